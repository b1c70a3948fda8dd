/* fixture_abort.c — cancellation through qv_gen_opts.abort_cb (issue 10): on the tiny model (golden
 * tiny_video prompt and pixel values, reference path, greedy, no stop), a run whose abort callback says
 * stop once k tokens were generated returns QV_ERR_CANCELLED with exactly the first k ids and the text of
 * those ids as a prefix of the uncancelled run's; stopping in the encoder or in the prefill returns
 * QV_ERR_CANCELLED with the prompt placed and nothing generated. The library reads no global flag, so two
 * runs on one engine do not disturb each other. */
#include "test.h"
#include "fixture_ask_check.h"
#include "engine.h"

typedef struct {
    const char *stage;       /* stop once this stage reported `after` (NULL: never) */
    long after;
    long seen;               /* the last done count of that stage */
    int polls;               /* abort_cb calls */
    long prefill_done;       /* the last "prefill" done */
} ctl;

static void on_progress(void *user, const char *stage, long done, long total) {
    ctl *c = user;
    (void)total;
    if (c->stage && !strcmp(stage, c->stage)) c->seen = done;
    if (!strcmp(stage, "prefill")) c->prefill_done = done;
}

static int on_abort(void *user) {
    ctl *c = user;
    c->polls++;
    return c->stage && c->seen >= c->after;
}

static qv_status run(qv_engine *e, const char *prompt, const char *pv, const char *root, int n_gen, ctl *c,
                     qv_result *res) {
    qv_gen_opts go = qv_engine_default_gen_opts(e);
    go.max_tokens = n_gen;
    go.use_stop = 0;
    go.sampling.greedy = 1;
    go.pixel_values_path = pv;
    go.media_root = root;
    go.on_progress = on_progress;
    go.abort_cb = on_abort;
    go.user = c;
    qv_err err = {0};
    qv_status st = qv_engine_run_raw(e, prompt, NULL, &go, res, &err);
    if (st) printf("run stopped: %s (%s)\n", qv_status_str(st), err.msg);
    return st;
}

int main(void) {
    char *model = test_fixture("models/tiny-qwen2vl"), *pv = test_fixture("golden/tiny_video.safetensors");
    char *root = test_fixture("");
    cJSON *g = ac_golden("tiny_video");
    CHECK(g != NULL);
    if (!g) return test_done();
    const char *prompt = cJSON_GetObjectItem(g, "prompt_raw")->valuestring;
    qv_engine_params ep = qv_engine_default_params();
    ep.model_dir = model;
    ep.prec = QV_PREC_REF;
    ep.chunk = 7;
    qv_engine *e = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_engine_create(&e, &ep, &err) == QV_OK, "engine: %s", err.msg);
    if (!e) return test_done();
    const int n_gen = 8;
    ctl c0 = {0};
    qv_result full = {0};
    CHECK(run(e, prompt, pv, root, n_gen, &c0, &full) == QV_OK);
    CHECK(full.n_gen == n_gen && c0.polls > n_gen); /* polled between pairs, chunks and tokens */
    static const int ks[] = {1, 3, 7};
    for (int i = 0; i < 3; i++) {
        ctl c = {.stage = "generate", .after = ks[i]};
        qv_result r = {0};
        qv_status st = run(e, prompt, pv, root, n_gen, &c, &r);
        CHECK_MSG(st == QV_ERR_CANCELLED, "abort after %d tokens: status %d", ks[i], st);
        CHECK_MSG(r.n_gen == ks[i], "abort after %d tokens: %d generated", ks[i], r.n_gen);
        CHECK_MSG(r.gen_ids && !memcmp(r.gen_ids, full.gen_ids, (size_t)ks[i] * sizeof *r.gen_ids),
                  "abort after %d tokens: ids are not the uncancelled run's first ones", ks[i]);
        CHECK(r.text && full.text && !strncmp(full.text, r.text, strlen(r.text)));
        CHECK(r.n_prompt == full.n_prompt && !r.stopped);
        qv_result_free(&r);
    }
    /* in the encoder (after the first pair) and in the prefill (after the first chunk) */
    static const char *stages[] = {"video", "prefill"};
    for (int i = 0; i < 2; i++) {
        ctl c = {.stage = stages[i], .after = 1};
        qv_result r = {0};
        qv_status st = run(e, prompt, pv, root, n_gen, &c, &r);
        CHECK_MSG(st == QV_ERR_CANCELLED && r.n_gen == 0 && r.text && !*r.text, "abort in %s: status %d, %d generated",
                  stages[i], st, r.n_gen);
        CHECK(r.n_prompt == full.n_prompt);
        if (i == 0) CHECK(c.prefill_done == 0);
        else CHECK_MSG(c.prefill_done == 7, "abort in the prefill: %ld tokens prefilled", c.prefill_done);
        qv_result_free(&r);
    }
    /* the engine is fine afterwards: the same ids again */
    ctl c1 = {0};
    qv_result again = {0};
    CHECK(run(e, prompt, pv, root, n_gen, &c1, &again) == QV_OK);
    CHECK(again.n_gen == n_gen && !memcmp(again.gen_ids, full.gen_ids, (size_t)n_gen * sizeof *again.gen_ids));
    qv_result_free(&again);
    qv_result_free(&full);
    qv_engine_free(e);
    cJSON_Delete(g);
    free(model);
    free(pv);
    free(root);
    return test_done();
}
