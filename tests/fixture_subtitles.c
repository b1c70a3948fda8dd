/* fixture_subtitles.c — end to end: a 60-second clip made with the ffmpeg command line, captioned by
 * `qv subtitles` with the tiny fixture model (real Qwen2 tokenizer, so captions are arbitrary UTF-8 from
 * the whole vocabulary), written as SRT, WebVTT and JSON. The SRT and VTT must pass the strict checker
 * (monotonic, non-overlapping, inside the clip), the JSON must parse and agree with them, and the
 * windows must tile the clip. Also --start/--end and a bad input's error. */
#include "genweights.h"
#include "model.h"
#include "demo.h"
#include "test.h"
#include "unit_output_subcheck.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    const char *qv = getenv("QV_BIN");
    if (!qv) qv = "build/qv";
    char *model = test_fixture("models/tiny-qwen2vl");
    char *dir = test_tmp("subs");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    CHECK(test_sh(cmd) == 0);
    char *clip = test_tmp("subs/clip60.mp4");
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -f lavfi -i testsrc2=size=160x120:rate=25:duration=60 -pix_fmt yuv420p -c:v libx264 "
             "'%s' 2>/dev/null || ffmpeg -v error -y -f lavfi -i testsrc2=size=160x120:rate=25:duration=60 -c:v mpeg4 '%s'",
             clip, clip);
    if (test_sh(cmd) != 0) {
        fprintf(stderr, "ffmpeg could not make the clip\n");
        CHECK(0);
        return test_done();
    }
    const char *common = "--fps 1 --min-pixels 3136 --max-pixels 12544 --max-tokens 8 --threads 2 --quiet";
    static const char *const ext[3] = {"srt", "vtt", "json"};
    char *docs[3] = {0};
    for (int k = 0; k < 3; k++) {
        char out[1024];
        snprintf(out, sizeof out, "%s/clip.%s", dir, ext[k]);
        snprintf(cmd, sizeof cmd, "'%s' subtitles --model '%s' '%s' -o '%s' %s", qv, model, clip, out, common);
        CHECK_MSG(test_sh(cmd) == 0, "%s", cmd);
        docs[k] = test_slurp(out);
        CHECK_MSG(docs[k] != NULL, "no %s written", out);
    }
    char why[512] = "";
    int n_srt = -1, n_vtt = -1;
    if (docs[0]) {
        n_srt = subcheck_srt(docs[0], 60000, why, sizeof why);
        CHECK_MSG(n_srt == 6, "SRT: %d cues (%s)\n%s", n_srt, why, docs[0]);
        CHECK(strstr(docs[0], "00:00:50,000 --> 00:01:00,000") != NULL);
    }
    if (docs[1]) {
        n_vtt = subcheck_vtt(docs[1], 60000, why, sizeof why);
        CHECK_MSG(n_vtt == 6, "VTT: %d cues (%s)\n%s", n_vtt, why, docs[1]);
    }
    if (docs[2]) {
        cJSON *root = cJSON_Parse(docs[2]);
        CHECK_MSG(root != NULL, "JSON does not parse:\n%s", docs[2]);
        cJSON *segs = cJSON_GetObjectItem(root, "segments");
        CHECK(cJSON_IsArray(segs) && cJSON_GetArraySize(segs) == 6);
        double prev = 0;
        int i = 0;
        cJSON *s;
        cJSON_ArrayForEach(s, segs) {
            cJSON *a = cJSON_GetObjectItem(s, "start"), *b = cJSON_GetObjectItem(s, "end"), *t = cJSON_GetObjectItem(s, "text");
            CHECK(cJSON_IsNumber(a) && cJSON_IsNumber(b) && cJSON_IsString(t));
            if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b)) break;
            /* windows tile the clip: each starts where the last ended, 10 s each */
            CHECK_MSG(a->valuedouble == prev && b->valuedouble == prev + 10, "segment %d: %g..%g", i, a->valuedouble, b->valuedouble);
            prev = b->valuedouble;
            i++;
        }
        CHECK(prev == 60);
        cJSON *d = cJSON_GetObjectItem(root, "duration");
        CHECK(cJSON_IsNumber(d) && d->valuedouble == 60);
        cJSON_Delete(root);
    }
    /* greedy decoding: the same captions whatever the format (JSON text == SRT text when single-line) */
    /* a part of the clip, window 7 s: [12, 30] -> 7 + 7 + 4 */
    snprintf(cmd, sizeof cmd, "'%s' subtitles --model '%s' '%s' --start 12 --end 30 --window 7 --format vtt %s > '%s/part.vtt'",
             qv, model, clip, common, dir);
    CHECK(test_sh(cmd) == 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/part.vtt", dir);
    char *part = test_slurp(path);
    if (part) {
        int n = subcheck_vtt(part, 30000, why, sizeof why);
        CHECK_MSG(n == 3, "part: %d (%s)\n%s", n, why, part);
        CHECK(strstr(part, "00:00:12.000 --> 00:00:19.000") && strstr(part, "00:00:26.000 --> 00:00:30.000"));
        free(part);
    }
    /* summarize --detail: JSON with the summary and the same 6 windows; text: summary, blank line, outline */
    snprintf(cmd, sizeof cmd, "'%s' summarize --model '%s' '%s' --detail -o '%s/sum.json' %s", qv, model, clip, dir, common);
    CHECK(test_sh(cmd) == 0);
    snprintf(path, sizeof path, "%s/sum.json", dir);
    char *sj = test_slurp(path);
    cJSON *sroot = sj ? cJSON_Parse(sj) : NULL;
    CHECK_MSG(sroot != NULL, "summary JSON does not parse");
    if (sroot) {
        CHECK(cJSON_IsString(cJSON_GetObjectItem(sroot, "summary")));
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(sroot, "segments")) == 6);
        cJSON_Delete(sroot);
    }
    free(sj);
    snprintf(cmd, sizeof cmd, "'%s' summarize --model '%s' '%s' --detail %s > '%s/sum.txt'", qv, model, clip, common, dir);
    CHECK(test_sh(cmd) == 0);
    snprintf(path, sizeof path, "%s/sum.txt", dir);
    char *st = test_slurp(path);
    CHECK(st && strstr(st, "\n\n[00:00:00.000 --> 00:00:10.000] ") && strstr(st, "[00:00:50.000 --> 00:01:00.000] "));
    free(st);
    /* captions stop at the first line break (extra stop ids) and must equal the first line of the answer
     * generated without those stops, same seed: checked on the demo model (byte-level vocabulary, so
     * random weights emit line breaks often), sampling at a high temperature */
    char *demo = test_tmp("subs/demo"), *demo_src = test_tmp("subs/demo-src"), *demo_cfg = test_tmp("subs/demo-src/config.json");
    qv_demo_tok tk;
    qv_err err = {0};
    mkdir(demo_src, 0755);
    CHECK(qv_demo_tokenizer_build(&tk, 100, &err) == QV_OK);
    CHECK(qv_demo_write_configs(&tk, demo_src, &err) == QV_OK);
    qv_genweights_params gp = qv_genweights_default_params();
    gp.tensor_specs = qv_model_tensor_specs;
    gp.config_path = demo_cfg;
    gp.out_dir = demo;
    CHECK_MSG(qv_genweights_write(&gp, &err) == QV_OK, "%s", err.msg);
    CHECK(qv_demo_write_tokenizer(&tk, demo, &err) == QV_OK);
    qv_demo_tokenizer_free(&tk);
    int breaks_seen = 0, compared = 0;
    for (int seed = 1; seed <= 4; seed++) {
        char *js[2] = {0};
        for (int full = 0; full < 2; full++) {
            snprintf(path, sizeof path, "%s/stop%d.json", dir, full);
            snprintf(cmd, sizeof cmd,
                     "'%s' subtitles --model '%s' '%s' --end 10 --window 2.5 --temperature 5 --seed %d %s %s --max-tokens 120 "
                     "-o '%s'", qv, demo, clip, seed, full ? "--full-answer" : "", common, path);
            /* common's --max-tokens 8 comes first; the later --max-tokens 120 wins */
            CHECK_MSG(test_sh(cmd) == 0, "%s", cmd);
            js[full] = test_slurp(path);
        }
        cJSON *c = js[0] ? cJSON_Parse(js[0]) : NULL, *f = js[1] ? cJSON_Parse(js[1]) : NULL;
        cJSON *cs = cJSON_GetObjectItem(c, "segments"), *fs = cJSON_GetObjectItem(f, "segments");
        CHECK(cJSON_GetArraySize(cs) == 4 && cJSON_GetArraySize(fs) == 4);
        for (int i = 0; i < cJSON_GetArraySize(cs) && i < cJSON_GetArraySize(fs); i++) {
            const char *cap = cJSON_GetObjectItem(cJSON_GetArrayItem(cs, i), "text")->valuestring;
            const char *ans = cJSON_GetObjectItem(cJSON_GetArrayItem(fs, i), "text")->valuestring;
            /* the first line: skip leading spaces/tabs/line breaks, stop at CR or LF, drop trailing blanks */
            while (*ans == ' ' || *ans == '\t' || *ans == '\n' || *ans == '\r') ans++;
            size_t n = strcspn(ans, "\r\n");
            breaks_seen += ans[n] != 0;
            while (n && (ans[n - 1] == ' ' || ans[n - 1] == '\t')) n--;
            CHECK_MSG(strlen(cap) == n && strncmp(cap, ans, n) == 0, "seed %d window %d: caption '%s' vs answer '%.*s'",
                      seed, i, cap, (int)n, ans);
            compared++;
        }
        cJSON_Delete(c);
        cJSON_Delete(f);
        free(js[0]);
        free(js[1]);
    }
    CHECK(compared == 16);
    CHECK_MSG(breaks_seen >= 2, "only %d answers had a line break: the stop was not exercised", breaks_seen);
    free(demo);
    free(demo_src);
    free(demo_cfg);
    /* no temp files left behind by the atomic writes */
    DIR *dd = opendir(dir);
    struct dirent *de;
    int tmp_left = 0;
    while (dd && (de = readdir(dd))) tmp_left += strstr(de->d_name, ".tmp") != NULL;
    if (dd) closedir(dd);
    CHECK(tmp_left == 0);
    /* a bad input fails with a message and writes nothing */
    snprintf(cmd, sizeof cmd, "echo garbage > '%s/bad.mp4'; '%s' subtitles --model '%s' '%s/bad.mp4' -o '%s/bad.srt' %s 2>'%s/err.txt'",
             dir, qv, model, dir, dir, common, dir);
    CHECK(test_sh(cmd) == 1);
    snprintf(path, sizeof path, "%s/bad.srt", dir);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/err.txt", dir);
    char *e = test_slurp(path);
    CHECK(e && strstr(e, "bad.mp4"));
    free(e);
    /* usage errors */
    snprintf(cmd, sizeof cmd, "'%s' subtitles --model '%s' '%s' -o '%s/x.mkv' 2>/dev/null", qv, model, clip, dir);
    CHECK(test_sh(cmd) == 2);
    snprintf(cmd, sizeof cmd, "'%s' subtitles --help > /dev/null", qv);
    CHECK(test_sh(cmd) == 0);
    for (int k = 0; k < 3; k++) free(docs[k]);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    test_sh(cmd);
    free(clip);
    free(dir);
    free(model);
    return test_done();
}
