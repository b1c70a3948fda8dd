/* fixture_tokenizer_cli.c — `qv tokenize` / `qv detokenize` ($QV_BIN) on golden tokenizer cases: the ids
 * and --tokens strings equal HF's, detokenize gives back the golden decoded text with and without
 * --skip-special, --tokenizer FILE works like --model DIR, and bad input exits non-zero with a message. */
#include "core.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <sys/wait.h>

static const char *g_bin;
static char *g_model, *g_tmp_in, *g_tmp_out;

/* runs `qv ARGS < in > out`; returns the exit status, output in a malloc'd buffer */
static int run(const char *args, const void *in, size_t in_len, char **out, size_t *out_len) {
    qv_err err = {0};
    qv_write_file_atomic(g_tmp_in, in, in_len, &err);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s < '%s' > '%s' 2>/dev/null", g_bin, args, g_tmp_in, g_tmp_out);
    int rc = system(cmd);
    rc = rc == -1 ? -1 : WEXITSTATUS(rc);
    if (qv_read_file(g_tmp_out, out, out_len, 0, &err) != QV_OK) *out = NULL, *out_len = 0;
    return rc;
}

int main(void) {
    g_bin = getenv("QV_BIN");
    if (!g_bin) g_bin = "build/qv";
    g_model = test_fixture("models/tiny-qwen2vl");
    char *tjson = test_fixture("models/tiny-qwen2vl/tokenizer.json");
    g_tmp_in = test_tmp("cli_in");
    g_tmp_out = test_tmp("cli_out");
    char *gpath = test_fixture("golden/tokenizer.json");
    char *buf;
    size_t len;
    qv_err err = {0};
    CHECK(qv_read_file(gpath, &buf, &len, 0, &err) == QV_OK);
    cJSON *g = buf ? cJSON_ParseWithLength(buf, len) : NULL;
    CHECK(g != NULL);
    if (!g) return test_done();
    const cJSON *cases = cJSON_GetObjectItem(g, "cases");
    static const int pick[] = {7, 39, 43, 105}; /* newlines, NFC, specials, 4-byte characters */
    for (size_t k = 0; k < sizeof pick / sizeof pick[0]; k++) {
        const cJSON *c = cJSON_GetArrayItem(cases, pick[k]);
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        char args[2048], *out;
        size_t ol;
        snprintf(args, sizeof args, "tokenize %s '%s'", k % 2 ? "--tokenizer" : "--model", k % 2 ? tjson : g_model);
        int rc = run(args, text, strlen(text), &out, &ol);
        cJSON *got = out ? cJSON_ParseWithLength(out, ol) : NULL;
        char *want = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "ids"));
        char *gots = got ? cJSON_PrintUnformatted(got) : NULL;
        CHECK_MSG(rc == 0 && gots && strcmp(gots, want) == 0 && ol > 0 && out[ol - 1] == '\n' && !memchr(out, '\n', ol - 1),
                  "case %d: tokenize gave %s, want %s", pick[k], out ? out : "(nothing)", want);
        free(out);
        free(gots);
        cJSON_Delete(got);
        /* --tokens */
        snprintf(args, sizeof args, "tokenize --model '%s' --tokens", g_model);
        rc = run(args, text, strlen(text), &out, &ol);
        got = out ? cJSON_ParseWithLength(out, ol) : NULL;
        gots = got ? cJSON_PrintUnformatted(got) : NULL;
        char *wtok = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "tokens"));
        CHECK_MSG(rc == 0 && gots && strcmp(gots, wtok) == 0, "case %d: --tokens gave %s", pick[k], out ? out : "-");
        free(out);
        free(gots);
        free(wtok);
        cJSON_Delete(got);
        /* detokenize the golden ids, with and without specials */
        for (int skip = 0; skip < 2; skip++) {
            snprintf(args, sizeof args, "detokenize --model '%s'%s", g_model, skip ? " --skip-special" : "");
            rc = run(args, want, strlen(want), &out, &ol);
            const char *exp = cJSON_GetObjectItem(c, skip ? "decoded_skip_special" : "decoded")->valuestring;
            CHECK_MSG(rc == 0 && out && ol == strlen(exp) && memcmp(out, exp, ol) == 0, "case %d: detokenize%s gave '%s'",
                      pick[k], skip ? " --skip-special" : "", out ? out : "-");
            free(out);
        }
        free(want);
    }
    /* NUL bytes and a trailing newline survive the round trip */
    static const char nul_text[] = "a\0b\n<|im_end|>\n";
    char args[2048], *out = NULL, *out2 = NULL;
    size_t ol = 0, ol2 = 0;
    snprintf(args, sizeof args, "tokenize --model '%s'", g_model);
    CHECK(run(args, nul_text, sizeof nul_text - 1, &out, &ol) == 0 && out);
    snprintf(args, sizeof args, "detokenize --model '%s'", g_model);
    CHECK(out && run(args, out, ol, &out2, &ol2) == 0 && out2 && ol2 == sizeof nul_text - 1 &&
          memcmp(out2, nul_text, ol2) == 0);
    free(out);
    free(out2);
    /* errors: not JSON, an id out of range, an unknown option, a missing model */
    CHECK(run(args, "[1, 2", 5, &out, &ol) == 1);
    free(out);
    CHECK(run(args, "[1, 99999999]", 13, &out, &ol) == 1);
    free(out);
    CHECK(run(args, "[1.5]", 5, &out, &ol) == 1);
    free(out);
    CHECK(run("tokenize --bogus", "x", 1, &out, &ol) == 2);
    free(out);
    CHECK(run("tokenize --model /nonexistent/model", "x", 1, &out, &ol) == 1);
    free(out);
    CHECK(run("tokenize --help", "", 0, &out, &ol) == 0 && out && strstr(out, "example"));
    free(out);
    cJSON_Delete(g);
    free(buf);
    free(gpath);
    free(tjson);
    return test_done();
}
