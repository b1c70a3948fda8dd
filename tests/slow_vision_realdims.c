/* slow_vision_realdims.c — the vision encoder at the real 7B dimensions (E 1280, 16 heads of 80, MLP
 * 5120, D 3584; depth 2) against the float64 reference dump of realdims_video: vision_embeds within
 * 1e-4 relative L2 on the reference path and 3e-2 on the fast path. Then times a 448x448 image (one
 * pair of 32x32 patches) and a 16-frame 448x448 clip (8 pairs) on both paths, projected to depth 32.
 *
 * Weights: $QV_REALDIMS_DIR when set (a folder made by `qv gen-weights`, shared with other slow tests),
 * else generated here with `$QV_BIN gen-weights` into $QV_TMP/realdims (3.3 GB, removed at the end).
 * QV_VISION_TIMING_ONLY=1 skips the golden comparison (to time any checkpoint in QV_REALDIMS_DIR). */
#include "test.h"

#include <sys/stat.h>
#include <time.h>

#include "checkpoint.h"
#include "safetensors.h"
#include "threads.h"
#include "encoder.h"

typedef struct { double t[72]; int n; } stamps;

/* CPU seconds of the whole process (all threads): on a shared, loaded machine, CPU time / threads is
 * a steadier estimate of the unloaded wall time than the wall time itself. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void stamp(void *user, const char *name, const float *data, int64_t rows, int64_t cols) {
    stamps *s = user;
    if (s->n < 72) s->t[s->n++] = qv_now();
}

static float *golden_f32(const qv_st *g, const char *name, int64_t *numel) {
    const qv_tensor *t = qv_st_get(g, name);
    if (!t) return NULL;
    *numel = qv_tensor_numel(t);
    float *f = malloc((size_t)*numel * sizeof(float));
    if (f && !qv_convert_to_f32(f, t->data, t->dtype, *numel)) { free(f); return NULL; }
    return f;
}

static void golden_case(const qv_vision *v, qv_pool *pool) {
    char *path = test_fixture("golden/realdims_video.safetensors");
    qv_st *g = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_st_open(&g, path, &err) == QV_OK, "%s", err.msg);
    free(path);
    if (!g) return;
    const qv_tensor *grid = qv_st_get(g, "video_grid_thw");
    CHECK(grid && grid->dtype == QV_I64 && qv_tensor_numel(grid) == 3);
    int64_t thw[3] = {0, 0, 0}, npx = 0, nref = 0;
    if (grid) memcpy(thw, grid->data, sizeof thw);
    const int t = (int)thw[0], gh = (int)thw[1], gw = (int)thw[2], n = gh * gw;
    const int P = qv_vision_patch_dim(v), D = qv_vision_hparams_of(v)->out_hidden;
    float *px = golden_f32(g, "pixel_values_videos", &npx);
    float *ref = golden_f32(g, "vision_embeds", &nref);
    CHECK(px && npx == (int64_t)t * n * P);
    CHECK(ref && nref == (int64_t)t * n / 4 * D);
    qv_vision_ctx *c = NULL;
    CHECK_MSG(qv_vision_ctx_create(&c, v, n, &err) == QV_OK, "%s", err.msg);
    float *out = calloc((size_t)t * n / 4 * D, sizeof(float));
    for (int prec = QV_PREC_REF; c && px && ref && out && prec <= QV_PREC_FAST; prec++) {
        double t0 = qv_now();
        qv_status s = qv_vision_encode(c, pool, (qv_precision)prec, px, t, gh, gw, out, NULL, NULL, &err);
        CHECK_MSG(s == QV_OK, "%s", err.msg);
        double e = test_rel_l2(out, ref, (long)nref), tol = prec == QV_PREC_REF ? 1e-4 : 3e-2;
        printf("realdims_video %-4s vision_embeds rel_l2 %.3e (tol %g)  %.2f s for %d pairs of %dx%d\n",
               prec == QV_PREC_REF ? "ref" : "fast", e, tol, qv_now() - t0, t, gh, gw);
        CHECK_MSG(e < tol, "rel L2 %g >= %g", e, tol);
    }
    free(out);
    free(px);
    free(ref);
    qv_vision_ctx_free(c);
    qv_st_free(g);
}

/* 448x448: grid 32x32 per pair; an image is one pair, a 16-frame clip 8 pairs. */
static void timing(const qv_vision *v, qv_pool *pool) {
    const int gh = 32, gw = 32, n = gh * gw, P = qv_vision_patch_dim(v), D = qv_vision_hparams_of(v)->out_hidden;
    const int depth = qv_vision_hparams_of(v)->depth, pairs = 8;
    qv_err err = {0};
    qv_vision_ctx *c = NULL;
    CHECK_MSG(qv_vision_ctx_create(&c, v, n, &err) == QV_OK, "%s", err.msg);
    float *px = malloc((size_t)pairs * n * P * sizeof(float));
    float *out = malloc((size_t)pairs * n / 4 * D * sizeof(float));
    if (!c || !px || !out) goto done;
    uint64_t s = 42;
    for (size_t i = 0; i < (size_t)pairs * n * P; i++) {   /* values in the normalized pixel range */
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        px[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 3.8 - 1.8);
    }
    printf("vision timing (%s kernels, %d threads), 448x448 = %dx%d patches, %d blocks measured\n",
           qv_kernels_name(), qv_pool_size(pool), gh, gw, depth);
    for (int prec = QV_PREC_REF; prec <= QV_PREC_FAST; prec++) {
        stamps st = {.n = 0};
        double p0[3], p1[3];
        qv_vision_ctx_profile(c, p0);
        double cpu0 = cpu_now();
        double t0 = qv_now();
        qv_status rc = qv_vision_encode_pair(c, pool, (qv_precision)prec, px, gh, gw, out, stamp, &st, &err);
        double t1 = qv_now();
        double cpu1 = cpu_now();
        qv_vision_ctx_profile(c, p1);
        CHECK_MSG(rc == QV_OK && st.n == depth + 1, "%s", err.msg);
        if (rc || st.n != depth + 1) break;
        double embed = st.t[0] - t0, block = (st.t[depth] - st.t[0]) / depth, merger = t1 - st.t[depth];
        double img32 = embed + 32 * block + merger;
        double c0 = qv_now();
        rc = qv_vision_encode(c, pool, (qv_precision)prec, px, pairs, gh, gw, out, NULL, NULL, &err);
        double clip = qv_now() - c0;
        CHECK_MSG(rc == QV_OK, "%s", err.msg);
        double clip32 = clip * (img32 / (t1 - t0));
        printf("  %-4s patch_embed %.3f s, per block %.3f s, merger %.3f s | image: %.2f s measured, %.2f s at "
               "depth 32 | 16-frame clip: %.2f s measured, %.2f s at depth 32\n",
               prec == QV_PREC_REF ? "ref" : "fast", embed, block, merger, t1 - t0, img32, clip, clip32);
        printf("        image split: linear %.3f s, attention %.3f s, element-wise %.3f s; CPU %.2f s = %.2f s per "
               "thread, %.2f s per thread at depth 32\n", p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2], cpu1 - cpu0,
               (cpu1 - cpu0) / qv_pool_size(pool), (cpu1 - cpu0) / qv_pool_size(pool) * img32 / (t1 - t0));
        for (size_t i = 0; i < (size_t)n / 4 * D; i++)
            if (!isfinite(out[i])) { CHECK_MSG(0, "non-finite output"); break; }
    }
done:
    free(px);
    free(out);
    qv_vision_ctx_free(c);
}

int main(void) {
    const char *shared = getenv("QV_REALDIMS_DIR");
    char *dir = NULL;
    int generated = 0;
    if (shared && *shared) dir = strdup(shared);
    else {
        dir = test_tmp("realdims");
        char *probe = malloc(strlen(dir) + 32);
        sprintf(probe, "%s/config.json", dir);
        struct stat sb;
        if (stat(probe, &sb) != 0) {
            const char *bin = getenv("QV_BIN");
            char *cfg = test_fixture("models/realdims-depth2/config.json");
            char cmd[4096];
            snprintf(cmd, sizeof cmd, "'%s' gen-weights --config '%s' --out '%s'", bin ? bin : "qv", cfg, dir);
            printf("generating: %s\n", cmd);
            fflush(stdout);
            int rc = system(cmd);
            CHECK_MSG(rc == 0, "gen-weights failed (%d)", rc);
            free(cfg);
            generated = 1;
            if (rc) { free(probe); free(dir); return test_done(); }
        }
        free(probe);
    }
    qv_ckpt *ck = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_ckpt_open(&ck, dir, &err) == QV_OK, "%s: %s", dir, err.msg);
    qv_vision *v = NULL;
    if (ck) CHECK_MSG(qv_vision_create(&v, ck, &err) == QV_OK, "%s", err.msg);
    qv_pool *pool = qv_pool_create(0);
    if (v) {
        const char *to = getenv("QV_VISION_TIMING_ONLY");
        if (!(to && *to == '1')) golden_case(v, pool);
        timing(v, pool);
    }
    qv_pool_free(pool);
    qv_vision_free(v);
    qv_ckpt_free(ck);
    if (generated) {   /* 3.3 GB: don't leave it behind */
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    free(dir);
    return test_done();
}
