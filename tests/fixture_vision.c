/* fixture_vision.c — the vision encoder against the float64 reference dumps of the tiny model:
 * tiny_video (3 temporal pairs of 18x32 patches) and tiny_image (one pair of 10x14), encoded pair by
 * pair. Every intermediate (vision.patch_embed, vision.block.K) and vision_embeds must be within 1e-4
 * relative L2 on the reference path; vision_embeds within 3e-2 on the fast path (fixtures README).
 * Also checks that bad grids are refused. */
#include "test.h"

#include "checkpoint.h"
#include "safetensors.h"
#include "threads.h"
#include "encoder.h"

#define MAXDUMP 64

typedef struct {
    char names[MAXDUMP][48];
    float *data[MAXDUMP];
    int64_t rows[MAXDUMP], cap_rows;
    int64_t cols;
    int n, bad;
} collector;

static void collect(void *user, const char *name, const float *data, int64_t rows, int64_t cols) {
    collector *c = user;
    int i = 0;
    while (i < c->n && strcmp(c->names[i], name)) i++;
    if (i == c->n) {
        if (c->n == MAXDUMP) { c->bad = 1; return; }
        snprintf(c->names[i], sizeof c->names[i], "%s", name);
        c->data[i] = calloc((size_t)(c->cap_rows * c->cols), sizeof(float));
        c->rows[i] = 0;
        c->n++;
    }
    if (cols != c->cols || c->rows[i] + rows > c->cap_rows || !c->data[i]) { c->bad = 1; return; }
    memcpy(c->data[i] + c->rows[i] * cols, data, (size_t)(rows * cols) * sizeof(float));
    c->rows[i] += rows;
}

static float *golden_f32(const qv_st *g, const char *name, int64_t *rows, int64_t *cols) {
    const qv_tensor *t = qv_st_get(g, name);
    if (!t || t->ndim != 2) return NULL;
    *rows = t->shape[0];
    *cols = t->shape[1];
    float *f = malloc((size_t)qv_tensor_numel(t) * sizeof(float));
    if (f && !qv_convert_to_f32(f, t->data, t->dtype, qv_tensor_numel(t))) { free(f); return NULL; }
    return f;
}

static void run_case(const qv_vision *v, qv_pool *pool, const char *gname, const char *pxname,
                     const char *gridname, qv_precision prec) {
    const char *pn = prec == QV_PREC_REF ? "ref" : "fast";
    char rel[128];
    snprintf(rel, sizeof rel, "golden/%s.safetensors", gname);
    char *path = test_fixture(rel);
    qv_st *g = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_st_open(&g, path, &err) == QV_OK, "%s: %s", path, err.msg);
    free(path);
    if (!g) return;
    const qv_tensor *grid = qv_st_get(g, gridname);
    CHECK(grid && grid->dtype == QV_I64 && grid->ndim == 2 && grid->shape[0] == 1 && grid->shape[1] == 3);
    if (!grid) { qv_st_free(g); return; }
    int64_t thw[3];
    memcpy(thw, grid->data, sizeof thw);
    const int t = (int)thw[0], gh = (int)thw[1], gw = (int)thw[2], n = gh * gw;
    const qv_vision_hparams *hp = qv_vision_hparams_of(v);
    const int E = hp->embed_dim, D = hp->out_hidden, P = qv_vision_patch_dim(v);

    int64_t pr, pc;
    float *px = golden_f32(g, pxname, &pr, &pc);
    CHECK(px && pr == (int64_t)t * n && pc == P);

    qv_vision_ctx *c = NULL;
    CHECK_MSG(qv_vision_ctx_create(&c, v, n, &err) == QV_OK, "%s", err.msg);
    float *out = calloc((size_t)t * n / 4 * D, sizeof(float));
    collector col = {.cap_rows = (int64_t)t * n, .cols = E};
    double t0 = qv_now();
    for (int p = 0; p < t && c && px; p++) {
        qv_status s = qv_vision_encode_pair(c, pool, prec, px + (size_t)p * n * P, gh, gw,
                                            out + (size_t)p * (n / 4) * D, collect, &col, &err);
        CHECK_MSG(s == QV_OK, "pair %d: %s", p, err.msg);
    }
    double dt = qv_now() - t0;
    CHECK(!col.bad);

    int64_t er, ec;
    float *ref = golden_f32(g, "vision_embeds", &er, &ec);
    CHECK(ref && er == (int64_t)t * n / 4 && ec == D);
    if (ref) {
        double e = test_rel_l2(out, ref, (long)(er * ec));
        double tol = prec == QV_PREC_REF ? 1e-4 : 3e-2;
        printf("%-10s %-4s vision_embeds      rel_l2 %.3e  (%.3f s)\n", gname, pn, e, dt);
        CHECK_MSG(e < tol, "%s %s vision_embeds rel L2 %g >= %g", gname, pn, e, tol);
    }
    free(ref);
    if (prec == QV_PREC_REF) {
        int checked = 0;
        for (int l = -1; l < hp->depth; l++) {
            char name[48];
            if (l < 0) snprintf(name, sizeof name, "vision.patch_embed");
            else snprintf(name, sizeof name, "vision.block.%d", l);
            float *gd = golden_f32(g, name, &er, &ec);
            int i = 0;
            while (i < col.n && strcmp(col.names[i], name)) i++;
            CHECK_MSG(gd && i < col.n, "%s: %s missing", gname, name);
            if (gd && i < col.n) {
                CHECK(er == col.rows[i] && ec == E);
                double e = test_rel_l2(col.data[i], gd, (long)(er * ec));
                printf("%-10s %-4s %-18s rel_l2 %.3e\n", gname, pn, name, e);
                CHECK_MSG(e < 1e-4, "%s %s rel L2 %g", gname, name, e);
                checked++;
            }
            free(gd);
        }
        CHECK(checked == hp->depth + 1);
    }
    for (int i = 0; i < col.n; i++) free(col.data[i]);
    free(out);
    free(px);
    qv_vision_ctx_free(c);
    qv_st_free(g);
}

int main(void) {
    char *dir = test_fixture("models/tiny-qwen2vl");
    qv_ckpt *ck = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_ckpt_open(&ck, dir, &err) == QV_OK, "%s: %s", dir, err.msg);
    free(dir);
    if (!ck) return test_done();
    qv_vision *v = NULL;
    CHECK_MSG(qv_vision_create(&v, ck, &err) == QV_OK, "%s", err.msg);
    if (!v) { qv_ckpt_free(ck); return test_done(); }
    qv_pool *pool = qv_pool_create(2);

    for (int prec = QV_PREC_REF; prec <= QV_PREC_FAST; prec++) {
        run_case(v, pool, "tiny_video", "pixel_values_videos", "video_grid_thw", (qv_precision)prec);
        run_case(v, pool, "tiny_image", "pixel_values", "image_grid_thw", (qv_precision)prec);
    }

    /* thread counts must not change results: no pool, and an odd-sized one */
    qv_pool *p3 = qv_pool_create(3);
    run_case(v, NULL, "tiny_image", "pixel_values", "image_grid_thw", QV_PREC_REF);
    run_case(v, p3, "tiny_image", "pixel_values", "image_grid_thw", QV_PREC_REF);
    qv_pool_free(p3);

    /* refused inputs: odd grid, pair larger than the context */
    qv_vision_ctx *c = NULL;
    CHECK(qv_vision_ctx_create(&c, v, 16, &err) == QV_OK);
    CHECK(qv_vision_ctx_create(&(qv_vision_ctx *){NULL}, v, 3, &err) == QV_ERR_INVALID);
    if (c) {
        float *px = calloc((size_t)36 * qv_vision_patch_dim(v), sizeof(float));
        float *out = calloc((size_t)9 * 64, sizeof(float));
        CHECK(qv_vision_encode_pair(c, pool, QV_PREC_REF, px, 3, 4, out, NULL, NULL, &err) == QV_ERR_INVALID);
        CHECK(qv_vision_encode_pair(c, pool, QV_PREC_REF, px, 6, 6, out, NULL, NULL, &err) == QV_ERR_INVALID);
        CHECK(strstr(err.msg, "exceeds") != NULL);
        free(px);
        free(out);
    }
    qv_vision_ctx_free(c);
    qv_vision_free(v);
    qv_pool_free(pool);
    qv_ckpt_free(ck);
    return test_done();
}
