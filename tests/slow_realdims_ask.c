/* slow_realdims_ask.c — qv ask on the realdims-depth2 checkpoint (real 7B widths, 2 vision blocks, 2 decoder
 * layers) against golden/realdims_video, from the golden pixel values and from sample_a.mp4, on the
 * reference path (every tensor within 1e-4, all greedy ids) and the fast path (3e-2, greedy ids while the
 * gap exceeds 0.1). The weights (3.3 GB) come from $QV_REALDIMS_DIR when set, else `qv gen-weights` writes
 * them into $QV_TMP and they are deleted at the end. */
#include "test.h"
#include "fixture_ask_check.h"

int main(void) {
    const char *given = getenv("QV_REALDIMS_DIR");
    char *dir = given && *given ? strdup(given) : test_tmp("realdims");
    int made = !(given && *given);
    if (made) {
        char *cfg = test_fixture("models/realdims-depth2/config.json"), *tok = test_fixture("models/tiny-qwen2vl");
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && '%s' gen-weights --config '%s' --out '%s' --tokenizer-from '%s' > /dev/null",
                 dir, ac_bin(), cfg, dir, tok);
        double t0 = qv_now();
        int rc = ac_run(cmd);
        fprintf(stderr, "gen-weights: exit %d in %.1f s\n", rc, qv_now() - t0);
        CHECK_MSG(rc == 0, "gen-weights failed: %s", cmd);
        free(cfg);
        free(tok);
        if (rc) return test_done();
    }
    for (int ref = 1; ref >= 0; ref--)
        for (int pv = 1; pv >= 0; pv--) {
            ac_case k = {dir, "realdims_video", ref, pv, 0, "--threads 2"};
            double t0 = qv_now();
            ac_check_case(&k);
            fprintf(stderr, "  %.1f s\n", qv_now() - t0);
        }
    if (made) {
        char cmd[2200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ac_run(cmd);
    }
    free(dir);
    return test_done();
}
