/* fixture_e2e.c — qv ask end to end from the media files (issue 6): --raw with the golden prompts (paths
 * relative to the fixtures folder, run from there) gives the golden prompt ids and first 8 greedy ids for
 * sample_a.mp4 (tiny_video) and image_c.png (tiny_image); the friendly forms build the same prompts (chat
 * form from the tiny model's template, base form with --base); streamed stdout equals the golden text;
 * errors give one line and the documented exit codes. */
#include "test.h"
#include "fixture_ask_check.h"

static char g_model[2048], g_root[2048], g_tmp[2048];

/* runs "cd fixtures && [env] qv ask ARGS > out 2> err"; returns the exit code; *out and *err: malloc'd texts */
static int ask(const char *env, const char *args, char **out, char **err) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s '%s' ask %s > '%s/out.txt' 2> '%s/err.txt'", g_root, env ? env : "",
             ac_bin(), args, g_tmp, g_tmp);
    int rc = ac_run(cmd);
    char path[2200];
    size_t len;
    snprintf(path, sizeof path, "%s/out.txt", g_tmp);
    if (qv_read_file(path, out, &len, 0, NULL)) *out = strdup("");
    snprintf(path, sizeof path, "%s/err.txt", g_tmp);
    if (qv_read_file(path, err, &len, 0, NULL)) *err = strdup("");
    return rc;
}

/* JSON result of ask vs golden: prompt ids equal input_ids, the first n greedy ids equal */
static void check_json(const char *what, const char *label, const char *args, int n) {
    cJSON *g = ac_golden(label);
    char *out, *err;
    int rc = ask(NULL, args, &out, &err);
    CHECK_MSG(rc == 0, "%s: exit %d: %s", what, rc, err);
    cJSON *r = cJSON_Parse(out);
    CHECK_MSG(r != NULL, "%s: JSON on stdout", what);
    if (r && g) {
        CHECK_MSG(ac_ids_equal(cJSON_GetObjectItem(r, "prompt_ids"), cJSON_GetObjectItem(g, "input_ids")),
                  "%s: prompt ids equal %s input_ids", what, label);
        CHECK_MSG(n == 0 || ac_greedy_ok(cJSON_GetObjectItem(r, "generated_ids"), g, 1, n) == n, "%s: first %d greedy ids", what, n);
        CHECK_MSG(cJSON_GetArraySize(cJSON_GetObjectItem(r, "generated_ids")) == n, "%s: %d ids generated", what, n);
        const cJSON *t = cJSON_GetObjectItem(r, "timings");
        CHECK_MSG(cJSON_IsNumber(cJSON_GetObjectItem(t, "prefill_s")), "%s: timings", what);
    }
    cJSON_Delete(r);
    cJSON_Delete(g);
    free(out);
    free(err);
}

/* single-quoted for the shell (prompts have no single quotes; checked) */
static char *quoted(const char *s) {
    CHECK(strchr(s, '\'') == NULL);
    size_t n = strlen(s);
    char *q = malloc(n + 3);
    q[0] = '\'';
    memcpy(q + 1, s, n);
    q[n + 1] = '\'';
    q[n + 2] = 0;
    return q;
}

int main(void) {
    char *m = test_fixture("models/tiny-qwen2vl"), *r = test_fixture(""), *t = test_tmp("");
    snprintf(g_model, sizeof g_model, "%s", m);
    snprintf(g_root, sizeof g_root, "%s", r);
    snprintf(g_tmp, sizeof g_tmp, "%s", t);
    free(m);
    free(r);
    free(t);
    char args[8192];

    /* --raw with the golden prompts, media decoded from the files */
    static const char *raw_cases[] = {"tiny_video", "tiny_image"};
    for (int c = 0; c < 2; c++) {
        cJSON *g = ac_golden(raw_cases[c]);
        char *q = quoted(cJSON_GetObjectItem(g, "prompt_raw")->valuestring);
        snprintf(args, sizeof args, "--model '%s' --ref --max-tokens 8 --json -q --raw %s", g_model, q);
        check_json("--raw", raw_cases[c], args, 8);
        free(q);
        cJSON_Delete(g);
    }

    /* friendly forms build the same prompts */
    snprintf(args, sizeof args, "--model '%s' --ref --max-tokens 8 --json -q media/sample_a.mp4 'What is happening in this video?'", g_model);
    check_json("chat form (checkpoint template)", "tiny_video", args, 8);
    snprintf(args, sizeof args, "--model '%s' --ref --max-tokens 8 --json -q --base --framing '{question}' --image media/image_c.png 'A picture of'", g_model);
    check_json("base form, --image, --framing", "tiny_image", args, 8);
    snprintf(args, sizeof args, "--model '%s' --ref --max-tokens 0 --json -q --base --video media/sample_a.mp4 'What is shown in this video?'", g_model);
    check_json("base form, default framing", "realdims_video", args, 0);

    /* streaming text on stdout (no --json), model from $QV_MODEL */
    {
        cJSON *g = ac_golden("tiny_text");
        char env[2200], *out, *err;
        snprintf(env, sizeof env, "QV_MODEL='%s'", g_model);
        char *q = quoted(cJSON_GetObjectItem(g, "prompt_raw")->valuestring);
        snprintf(args, sizeof args, "--ref --no-stop --max-tokens 16 -q --raw %s", q);
        int rc = ask(env, args, &out, &err);
        CHECK_MSG(rc == 0, "streamed: exit %d: %s", rc, err);
        const char *want = cJSON_GetObjectItem(g, "greedy_text")->valuestring;
        size_t n = strlen(out);
        if (n && out[n - 1] == '\n') out[--n] = 0;
        CHECK_MSG(strcmp(out, want) == 0, "streamed text\n got  '%s'\n want '%s'", out, want);
        CHECK_MSG(*err == 0, "--quiet: stderr empty, got '%s'", err);
        free(q);
        free(out);
        free(err);
        cJSON_Delete(g);
    }

    /* errors: one clear line, non-zero exit */
    struct { const char *env, *args; int rc; const char *says; } bad[] = {
        {"QV_MODEL=", "media/sample_a.mp4 'What?'", 2, "model"},
        {NULL, "--model /nonexistent/model media/sample_a.mp4 'What?'", 1, "/nonexistent/model"},
        {NULL, "--model MODEL media/missing.mp4 'What?'", 1, "media/missing.mp4"},
        {NULL, "--model MODEL --raw '{{video:media/missing.mp4}}What?'", 1, "missing.mp4"},
        {NULL, "--model MODEL media/sample_a.mp4 '  '", 2, "empty"},
        {NULL, "--model MODEL --raw ''", 2, "empty"},
        {NULL, "--model MODEL --max-tokens -3 'x'", 2, "--max-tokens"},
        {NULL, "--model MODEL --bogus 'x'", 2, "--bogus"},
        {NULL, "--model MODEL --raw '{{video:media/sample_a.mp4'", 1, "}}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char a[4096], *out, *err;
        const char *mm = strstr(bad[i].args, "MODEL");
        if (mm) snprintf(a, sizeof a, "%.*s'%s'%s", (int)(mm - bad[i].args), bad[i].args, g_model, mm + 5);
        else snprintf(a, sizeof a, "%s", bad[i].args);
        int rc = ask(bad[i].env, a, &out, &err);
        int lines = 0;
        for (const char *p = err; *p; p++) lines += *p == '\n';
        CHECK_MSG(rc == bad[i].rc, "'%s': exit %d, want %d", bad[i].args, rc, bad[i].rc);
        CHECK_MSG(strstr(err, bad[i].says) && lines == 1, "'%s': stderr should be one line naming '%s': %s", bad[i].args,
                  bad[i].says, err);
        free(out);
        free(err);
    }
    /* Ctrl-C: a long generation stops cleanly with exit 130 */
    {
        char env[64], *out, *err;
        snprintf(env, sizeof env, "timeout --preserve-status -s INT 3");
        snprintf(args, sizeof args, "--model '%s' --raw 'hello' --no-stop --max-tokens 1000000 --ctx-max 2000000", g_model);
        double t0 = qv_now();
        int rc = ask(env, args, &out, &err);
        CHECK_MSG(rc == 130 && strstr(err, "cancelled"), "SIGINT: exit %d (want 130), stderr '%s'", rc, err);
        CHECK_MSG(qv_now() - t0 < 30, "SIGINT: stopped in %.1f s", qv_now() - t0);
        free(out);
        free(err);
    }
    char *out, *err;
    CHECK(ask(NULL, "--help", &out, &err) == 0 && strstr(out, "examples") && strstr(out, "--raw"));
    free(out);
    free(err);
    return test_done();
}
