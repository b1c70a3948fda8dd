/* slow_lm_realdims.c — the language model at the real 7B dimensions (2 decoder layers, hidden 3584,
 * 28 heads, 4 KV heads, vocab 152064, untied) against golden/realdims_video: positions equal, lm.norm
 * (last 16 rows) and logits_last within 1e-4 relative L2 and the 8 greedy ids equal on the reference
 * path; 3e-2 and the greedy rule of the fixtures README on the fast path. Also prints the time per
 * decoder layer of prefill and decode (the dump callback timestamps each layer).
 *
 * Weights: $QV_REALDIMS_DIR when set, else $QV_TMP/realdims, made by `$QV_BIN gen-weights` when absent
 * (3.3 GB; deleted again at the end unless QV_KEEP_REALDIMS is set or the folder was given). */
#include "test.h"
#include "lm.h"

#include <cjson/cJSON.h>

typedef struct {
    int D, n, last;       /* keep rows [n - last, n) of lm.norm */
    float *norm16;        /* [last][D] */
    int64_t seen;         /* rows of lm.norm seen */
    double t0, t_layer[64], t_norm;
    int n_layers;
} obs;

static void on_dump(void *u, const char *name, const float *d, int64_t rows, int64_t cols) {
    obs *o = u;
    double now = qv_now();
    int k;
    if (sscanf(name, "lm.layer.%d", &k) == 1 && k >= 0 && k < 64) {
        o->t_layer[k] += now - o->t0;
        o->t0 = now;
        if (k + 1 > o->n_layers) o->n_layers = k + 1;
    } else if (!strcmp(name, "lm.norm")) {
        for (int64_t r = 0; r < rows; r++) {
            int64_t g = o->seen + r, dst = g - (o->n - o->last);
            if (dst >= 0 && dst < o->last && o->norm16) memcpy(o->norm16 + dst * cols, d + r * cols, (size_t)cols * sizeof *d);
        }
        o->seen += rows;
        o->t_norm += now - o->t0;
        o->t0 = now;
    }
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

int main(void) {
    qv_err err;
    const char *given = getenv("QV_REALDIMS_DIR");
    char *dir = given ? strdup(given) : test_tmp("realdims");
    char *idx = qv_path_join(dir, "model.safetensors.index.json");
    int made = 0;
    if (!qv_file_exists(idx)) {
        const char *bin = getenv("QV_BIN");
        char *cfg = test_fixture("models/realdims-depth2/config.json");
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "'%s' gen-weights --config '%s' --out '%s' --quiet", bin ? bin : "qv", cfg, dir);
        free(cfg);
        double t = qv_now();
        int rc = system(cmd);
        printf("gen-weights: rc %d, %.1f s\n", rc, qv_now() - t);
        CHECK_MSG(rc == 0, "%s failed", cmd);
        if (rc) return test_done();
        made = !given;
    }
    free(idx);
    double t = qv_now();
    qv_ckpt *ck = NULL;
    if (qv_ckpt_open(&ck, dir, &err) != QV_OK) {
        CHECK_MSG(0, "open %s: %s", dir, err.msg);
        return test_done();
    }
    qv_lm *m = NULL;
    CHECK_MSG(qv_lm_create(&m, ck, &err) == QV_OK, "lm create: %s", err.msg);
    if (!m) return test_done();
    printf("load: %.2f s\n", qv_now() - t);
    const qv_text_hparams *hp = qv_lm_hparams(m);
    int D = hp->hidden, V = hp->vocab;

    /* the golden case */
    char *jp = test_fixture("golden/realdims_video.json"), *txt = NULL;
    size_t len;
    CHECK(qv_read_file(jp, &txt, &len, 0, &err) == QV_OK);
    free(jp);
    cJSON *js = cJSON_Parse(txt);
    free(txt);
    int32_t ids[1024], greedy[64];
    double gap[64];
    int n = 0, ng = 0, vg[8][3], nvid = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(js, "input_ids")) if (n < 1024) ids[n++] = e->valueint;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(js, "greedy_ids")) if (ng < 64) greedy[ng++] = e->valueint;
    int k = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(js, "greedy_top1_top2_gap")) if (k < 64) gap[k++] = e->valuedouble;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(js, "video_grid_thw")) if (nvid < 8) {
        for (int q = 0; q < 3; q++) vg[nvid][q] = cJSON_GetArrayItem(e, q)->valueint;
        nvid++;
    }
    int64_t gdelta = (int64_t)cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(js, "rope_deltas"), 0), 0)->valuedouble;
    cJSON_Delete(js);
    char *sp = test_fixture("golden/realdims_video.safetensors");
    qv_st *st = NULL;
    CHECK(qv_st_open(&st, sp, &err) == QV_OK);
    free(sp);
    if (!st || n == 0) return test_done();
    int64_t nv = 0, nn = 0, nl = 0;
    float *vis = test_gold_f32(st, "vision_embeds", &nv);
    float *gnorm = test_gold_f32(st, "lm.norm.last16", &nn);
    float *glog = test_gold_f32(st, "logits_last", &nl);
    const qv_tensor *gp = qv_st_get(st, "position_ids");
    CHECK(vis && gnorm && glog && gp && nn == 16 * (int64_t)D && nl == V);

    int64_t *pos = malloc(3 * (size_t)n * sizeof *pos), delta = 0;
    CHECK(qv_mrope_positions(ids, n, NULL, 0, (const int(*)[3])vg, nvid, hp, 2, pos, &delta, &err) == QV_OK);
    CHECK(gp && qv_tensor_numel(gp) == 3 * (int64_t)n && !memcmp(pos, gp->data, 3 * (size_t)n * sizeof *pos));
    CHECK(delta == gdelta);

    qv_pool *pool = qv_pool_create(0);
    float *logits = malloc((size_t)V * sizeof *logits);
    int n_paths = 2;
#if defined(__SANITIZE_ADDRESS__)
    n_paths = 1;   /* sanitizer builds run at -O0: the reference path alone takes ~12 min on this machine */
    printf("sanitizer build: reference path only\n");
#endif
    for (int pi = 0; pi < n_paths; pi++) {
        qv_precision prec = pi ? QV_PREC_FAST : QV_PREC_REF;
        const char *pn = pi ? "FAST" : "REF";
        qv_lm_ctx_params cp = qv_lm_ctx_default_params();
        cp.n_ctx = n + ng;
        cp.prec = prec;
        cp.pool = pool;
        cp.chunk = 256;
        qv_lm_ctx *ctx = NULL;
        CHECK_MSG(qv_lm_ctx_create(&ctx, m, &cp, &err) == QV_OK, "ctx: %s", err.msg);
        if (!ctx) break;
        obs o = {.D = D, .n = n, .last = 16, .norm16 = malloc(16 * (size_t)D * sizeof(float))};
        o.t0 = qv_now();
        double tp = qv_now();
        qv_status s = qv_lm_prefill(ctx, ids, n, vis, (int)(nv / D), pos, n, logits, on_dump, &o, &err);
        tp = qv_now() - tp;
        CHECK_MSG(s == QV_OK, "prefill: %s", err.msg);
        double en = test_rel_l2(o.norm16, gnorm, 16 * (int64_t)D), el = test_rel_l2(logits, glog, V);
        double tol = pi ? 3e-2 : 1e-4;
        printf("%s lm.norm.last16 rel L2 %.3g, logits_last rel L2 %.3g\n", pn, en, el);
        CHECK_MSG(en < tol, "%s lm.norm.last16 %g", pn, en);
        CHECK_MSG(el < tol, "%s logits_last %g", pn, el);
        printf("%s prefill %d tokens: %.2f s (%.1f tok/s); per layer:", pn, n, tp, n / tp);
        for (int l = 0; l < o.n_layers; l++) printf(" %.2f s", o.t_layer[l]);
        printf("; final norm + lm_head %.3f s\n", tp - o.t_layer[0] - o.t_layer[1]);
        qv_lm_stats s0, s1;
        qv_lm_ctx_stats(ctx, &s0);
        printf("%s prefill split: linear %.2f s, attention %.2f s, other %.2f s\n", pn, s0.linear_s, s0.attention_s,
               s0.other_s);
        /* greedy decode, feeding the reference ids; timed per layer through a 1-token prefill with dump */
        int need = 0;
        while (need < ng && gap[need] > 0.1) need++;
        int agree = 0;
        double td = 0, tl[64] = {0};
        int steps = 0;
        for (k = 0; k < ng; k++) {
            if (argmax(logits, V) != greedy[k]) break;
            agree++;
            if (k + 1 == ng) break;
            int64_t p3[3] = {n + k + delta, n + k + delta, n + k + delta};
            obs od = {.D = D, .n = 1, .last = 0};
            double t1 = qv_now();
            od.t0 = t1;
            s = qv_lm_prefill(ctx, &greedy[k], 1, NULL, 0, p3, 1, logits, on_dump, &od, &err);
            td += qv_now() - t1;
            for (int l = 0; l < od.n_layers; l++) tl[l] += od.t_layer[l];
            steps++;
            if (s != QV_OK) { CHECK_MSG(0, "decode: %s", err.msg); break; }
        }
        printf("%s greedy: %d of %d equal (%d required)\n", pn, agree, ng, pi ? need : ng);
        CHECK_MSG(agree >= (pi ? need : ng), "%s greedy %d equal", pn, agree);
        qv_lm_ctx_stats(ctx, &s1);
        if (steps) {
            printf("%s decode split per token: linear %.1f ms, attention %.2f ms, other %.2f ms\n", pn,
                   1e3 * (s1.linear_s - s0.linear_s) / steps, 1e3 * (s1.attention_s - s0.attention_s) / steps,
                   1e3 * (s1.other_s - s0.other_s) / steps);
            printf("%s decode: %.3f s/token (%.2f tok/s); per layer:", pn, td / steps, steps / td);
            for (int l = 0; l < hp->n_layers; l++) printf(" %.1f ms", 1e3 * tl[l] / steps);
            printf("; norm + lm_head %.1f ms\n", 1e3 * (td - tl[0] - tl[1]) / steps);
            printf("%s 7B estimate (28 layers): decode %.2f tok/s, prefill %.1f tok/s\n", pn,
                   1.0 / ((tl[0] + tl[1]) / 2 / steps * 28 + (td - tl[0] - tl[1]) / steps),
                   n / ((o.t_layer[0] + o.t_layer[1]) / 2 * 28 + (tp - o.t_layer[0] - o.t_layer[1])));
        }
        free(o.norm16);
        qv_lm_ctx_free(ctx);
    }
    printf("peak RSS %.2f GB\n", qv_peak_rss() / 1e9);
    free(logits);
    free(pos);
    free(vis);
    free(gnorm);
    free(glog);
    qv_st_free(st);
    qv_pool_free(pool);
    qv_lm_free(m);
    qv_ckpt_free(ck);
    if (made && !getenv("QV_KEEP_REALDIMS")) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    free(dir);
    return test_done();
}
