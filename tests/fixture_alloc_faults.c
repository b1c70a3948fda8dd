/* fixture_alloc_faults.c — every allocation of a tiny-model ask fails in turn (issue 10): through the
 * engine API in process (create the engine on models/tiny-qwen2vl, build a prompt with media/image_c.png,
 * run 2 tokens on the reference path, free everything), the n-th allocation of the library's seam
 * (src/alloc.h) returns NULL, for every n from 1 to the count of a clean run. Each such run must end in
 * a clean error status with a message (or succeed, where the library has a fallback that needs no
 * memory), never crash; under the ASan build (scripts/test.sh: detect_leaks=1) any leak on an error
 * path fails the test at exit. QV_ALLOC_FAULTS_STEP=k tries every k-th n only (for a quick look). */
#include "test.h"
#include "alloc.h"
#include "engine.h"

static qv_status ask_once(const char *model, const char *image, qv_result *res, qv_err *err) {
    qv_engine_params ep = qv_engine_default_params();
    ep.model_dir = model;
    ep.prec = QV_PREC_REF;
    ep.n_threads = 2;
    qv_engine *e = NULL;
    qv_status st = qv_engine_create(&e, &ep, err);
    if (st) return st;
    char *prompt = NULL;
    const char *images[] = {image};
    st = qv_engine_build_prompt(e, NULL, 0, images, 1, "What is in the picture?", NULL, &prompt, err);
    if (!st) {
        qv_gen_opts go = qv_engine_default_gen_opts(e);
        go.max_tokens = 2;
        go.use_stop = 0;
        go.sampling.greedy = 1;
        qv_media_opts mo = qv_media_default_opts();
        st = qv_engine_run_raw(e, prompt, &mo, &go, res, err);
    }
    free(prompt);
    qv_engine_free(e);
    return st;
}

int main(void) {
    char *model = test_fixture("models/tiny-qwen2vl"), *image = test_fixture("media/image_c.png");
    qv_err err = {0};
    qv_result ok = {0};
    qv_alloc_fail_at(0);
    qv_status st = ask_once(model, image, &ok, &err);
    uint64_t total = qv_alloc_count();
    CHECK_MSG(st == QV_OK && ok.n_gen == 2, "clean run: %s", err.msg);
    printf("a clean run makes %llu allocations through the seam\n", (unsigned long long)total);
    CHECK(total > 100);
    const char *sv = getenv("QV_ALLOC_FAULTS_STEP");
    uint64_t step = sv && atoll(sv) > 0 ? (uint64_t)atoll(sv) : 1;
    uint64_t failed = 0, absorbed = 0, unreached = 0;
    for (uint64_t n = 1; n <= total; n += step) {
        qv_result r = {0};
        qv_err e2 = {0};
        qv_alloc_fail_at(n);
        qv_status s = ask_once(model, image, &r, &e2);
        uint64_t made = qv_alloc_count();
        qv_alloc_fail_at(0);
        if (made < n) unreached++;               /* threads made the run take another path */
        else if (s == QV_OK) {
            absorbed++;
            CHECK_MSG(r.n_gen == 2 && r.text, "allocation %llu failed, the run succeeded without its tokens",
                      (unsigned long long)n);
        } else {
            failed++;
            CHECK_MSG(e2.msg[0] != 0 && s != QV_OK, "allocation %llu failed: status %d without a message",
                      (unsigned long long)n, s);
        }
        qv_result_free(&r);
    }
    printf("failed allocation -> error %llu, absorbed by a fallback %llu, not reached %llu (step %llu)\n",
           (unsigned long long)failed, (unsigned long long)absorbed, (unsigned long long)unreached,
           (unsigned long long)step);
    CHECK(failed > 0);
    qv_result_free(&ok);
    free(model);
    free(image);
    return test_done();
}
