/* pixel_values.c — encoder input from a golden-layout safetensors file (pixel_values.h). */
#include "pixel_values.h"

#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "tensor.h"

struct qv_pv_file {
    qv_st *st;
    float *px[2];            /* [0] images, [1] videos: all rows, f32 copies */
    int64_t n_rows[2];
    int64_t (*grid[2])[3];
    int n_grid[2];
    int patch_dim;
};

void qv_pv_free(qv_pv_file *f) {
    if (!f) return;
    for (int k = 0; k < 2; k++) {
        free(f->px[k]);
        free(f->grid[k]);
    }
    qv_st_free(f->st);
    free(f);
}

static qv_status pv_read(qv_pv_file *f, const char *path, int patch_dim, qv_err *err) {
    qv_status st = qv_st_open(&f->st, path, err);
    if (st) return st;
    static const char *px_names[2] = {"pixel_values", "pixel_values_videos"};
    static const char *grid_names[2] = {"image_grid_thw", "video_grid_thw"};
    for (int k = 0; k < 2; k++) {
        const qv_tensor *px = qv_st_get(f->st, px_names[k]), *g = qv_st_get(f->st, grid_names[k]);
        if (!px && !g) continue;
        if (!px || !g)
            return qv_errf(err, QV_ERR_FORMAT, "%s: has %s without %s", path, px ? px_names[k] : grid_names[k],
                           px ? grid_names[k] : px_names[k]);
        if (g->dtype != QV_I64 || g->ndim != 2 || g->shape[1] != 3 || g->shape[0] < 1 || g->shape[0] > 1 << 20)
            return qv_errf(err, QV_ERR_FORMAT, "%s: %s must be I64 [n, 3]", path, grid_names[k]);
        if (px->ndim != 2 || px->shape[1] != patch_dim)
            return qv_errf(err, QV_ERR_FORMAT, "%s: %s must be [patches, %d]", path, px_names[k], patch_dim);
        f->n_grid[k] = (int)g->shape[0];
        f->grid[k] = malloc((size_t)f->n_grid[k] * sizeof *f->grid[k]);
        if (!f->grid[k]) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
        memcpy(f->grid[k], g->data, (size_t)f->n_grid[k] * 24);
        int64_t rows = 0;
        for (int i = 0; i < f->n_grid[k]; i++) {
            int64_t *gt = f->grid[k][i];
            if (gt[0] < 1 || gt[1] < 2 || gt[2] < 2 || gt[1] % 2 || gt[2] % 2 || gt[0] > 1 << 20 || gt[1] > 1 << 14 ||
                gt[2] > 1 << 14)
                return qv_errf(err, QV_ERR_FORMAT, "%s: %s row %d is not a valid grid", path, grid_names[k], i);
            rows += gt[0] * gt[1] * gt[2]; /* at most 2^48 per row: no overflow while rows <= shape[0] */
            if (rows > px->shape[0])
                return qv_errf(err, QV_ERR_FORMAT, "%s: the grids of %s imply more than its %lld rows", path, grid_names[k],
                               (long long)px->shape[0]);
        }
        if (rows != px->shape[0])
            return qv_errf(err, QV_ERR_FORMAT, "%s: %s has %lld rows, its grids imply %lld", path, px_names[k],
                           (long long)px->shape[0], (long long)rows);
        uint64_t n = (uint64_t)rows * (uint64_t)patch_dim;
        f->px[k] = malloc(n * sizeof(float) + 1);
        if (!f->px[k]) return qv_errf(err, QV_ERR_NOMEM, "out of memory for %s", px_names[k]);
        if (!qv_convert_to_f32(f->px[k], px->data, px->dtype, (int64_t)n))
            return qv_errf(err, QV_ERR_FORMAT, "%s: %s is not a float tensor", path, px_names[k]);
        f->n_rows[k] = rows;
    }
    return QV_OK;
}

qv_status qv_pv_open(qv_pv_file **out, const char *path, int patch_dim, qv_err *err) {
    *out = NULL;
    qv_pv_file *f = calloc(1, sizeof *f);
    if (!f) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    f->patch_dim = patch_dim;
    qv_status st = pv_read(f, path, patch_dim, err);
    if (st) {
        qv_pv_free(f);
        return st;
    }
    *out = f;
    return QV_OK;
}

int qv_pv_n_grids(const qv_pv_file *f, int kind) { return f ? f->n_grid[kind != 0] : 0; }

const int64_t *qv_pv_grid(const qv_pv_file *f, int kind, int i) { return f->grid[kind != 0][i]; }

qv_pv_source qv_pv_source_of(const qv_pv_file *f, int kind, int i) {
    int k = kind != 0;
    int64_t row = 0;
    for (int j = 0; j < i; j++) row += f->grid[k][j][0] * f->grid[k][j][1] * f->grid[k][j][2];
    const int64_t *g = f->grid[k][i];
    return (qv_pv_source){f->px[k] + (size_t)row * f->patch_dim, (int)g[0], g[1] * g[2], f->patch_dim};
}

qv_status qv_pv_run(const qv_pv_source *s, qv_pair_fn on_pair, void *user, qv_err *err) {
    for (int k = 0; k < s->t; k++)
        if (on_pair && on_pair(user, k, s->px + (size_t)(k * s->per_pair) * s->patch_dim, NULL))
            return qv_errf(err, QV_ERR_CANCELLED, "stopped by the pair callback");
    return QV_OK;
}
