/* engine_dump.c — qv_dumper (engine.h): collects the f32 matrices a run dumps and writes them, with the
 * run's grids and positions, as one safetensors file in the layout of fixtures/golden/<case>.safetensors. */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

typedef struct {
    char *name;
    float *data;
    int64_t rows, cols, cap_rows;
} entry;

struct qv_dumper {
    entry *e;
    int n, cap;
    int failed;
};

qv_dumper *qv_dumper_create(void) { return calloc(1, sizeof(qv_dumper)); }

void qv_dumper_free(qv_dumper *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) {
        free(d->e[i].name);
        free(d->e[i].data);
    }
    free(d->e);
    free(d);
}

int qv_dumper_failed(const qv_dumper *d) { return d ? d->failed : 1; }

void qv_dumper_fn(void *user, const char *name, const float *data, int64_t rows, int64_t cols) {
    qv_dumper *d = user;
    if (!d || d->failed || rows <= 0 || cols <= 0 || !data) return;
    entry *en = NULL;
    for (int i = 0; i < d->n; i++)
        if (strcmp(d->e[i].name, name) == 0) en = &d->e[i];
    if (en && en->cols != cols) { /* a new width under the same name cannot be appended */
        d->failed = 1;
        return;
    }
    if (!en) {
        if (d->n == d->cap) {
            int nc = d->cap ? d->cap * 2 : 16;
            entry *q = realloc(d->e, (size_t)nc * sizeof *q);
            if (!q) {
                d->failed = 1;
                return;
            }
            d->e = q;
            d->cap = nc;
        }
        en = &d->e[d->n];
        memset(en, 0, sizeof *en);
        en->name = strdup(name);
        en->cols = cols;
        if (!en->name) {
            d->failed = 1;
            return;
        }
        d->n++;
    }
    if (en->rows + rows > en->cap_rows) {
        int64_t nc = en->cap_rows ? en->cap_rows : 16;
        while (nc < en->rows + rows) nc *= 2;
        uint64_t bytes;
        if (!qv_mul_ok((uint64_t)nc, (uint64_t)cols * sizeof(float), &bytes) || bytes > SIZE_MAX) {
            d->failed = 1;
            return;
        }
        float *q = realloc(en->data, (size_t)bytes);
        if (!q) {
            d->failed = 1;
            return;
        }
        en->data = q;
        en->cap_rows = nc;
    }
    memcpy(en->data + en->rows * cols, data, (size_t)(rows * cols) * sizeof(float));
    en->rows += rows;
}

/* Output order: encoder input and grids, vision intermediates, vision_embeds, positions, lm, logits. */
static int rank(const char *name) {
    if (strncmp(name, "pixel_values", 12) == 0) return 0;
    if (strncmp(name, "vision.", 7) == 0) return 2;
    if (strcmp(name, "vision_embeds") == 0) return 3;
    if (strncmp(name, "lm.", 3) == 0) return 5;
    return 6;
}

qv_status qv_dumper_write(const qv_dumper *d, const char *path, const qv_result *res, qv_err *err) {
    if (!d || d->failed) return qv_errf(err, QV_ERR_NOMEM, "%s: the dump ran out of memory", path);
    int n_img = 0, n_vid = 0;
    for (int i = 0; res && i < res->n_vision; i++) {
        if (res->vision[i].is_video) n_vid++;
        else n_img++;
    }
    int64_t *grid_img = calloc((size_t)n_img * 3 + 1, sizeof(int64_t));
    int64_t *grid_vid = calloc((size_t)n_vid * 3 + 1, sizeof(int64_t));
    qv_tensor *ts = calloc((size_t)d->n + 3, sizeof *ts);
    if (!grid_img || !grid_vid || !ts) {
        free(grid_img);
        free(grid_vid);
        free(ts);
        return qv_errf(err, QV_ERR_NOMEM, "out of memory writing %s", path);
    }
    int gi = 0, gv = 0;
    for (int i = 0; res && i < res->n_vision; i++) {
        const qv_result_vision *v = &res->vision[i];
        int64_t *g = v->is_video ? &grid_vid[3 * gv++] : &grid_img[3 * gi++];
        g[0] = v->t;
        g[1] = v->gh;
        g[2] = v->gw;
    }
    int nt = 0;
    for (int r = 0; r <= 6; r++) {
        if (r == 1) {
            if (n_img) ts[nt++] = (qv_tensor){"image_grid_thw", QV_I64, 2, {n_img, 3}, grid_img, (uint64_t)n_img * 24};
            if (n_vid) ts[nt++] = (qv_tensor){"video_grid_thw", QV_I64, 2, {n_vid, 3}, grid_vid, (uint64_t)n_vid * 24};
        }
        if (r == 4 && res && res->position_ids && res->n_prompt > 0)
            ts[nt++] = (qv_tensor){"position_ids", QV_I64, 2, {3, res->n_prompt}, res->position_ids,
                                   (uint64_t)res->n_prompt * 3 * 8};
        for (int i = 0; i < d->n; i++) {
            const entry *en = &d->e[i];
            if (rank(en->name) != r) continue;
            qv_tensor t = {en->name, QV_F32, 2, {en->rows, en->cols}, en->data,
                           (uint64_t)en->rows * (uint64_t)en->cols * 4};
            if (strcmp(en->name, "logits_last") == 0) { /* golden layout: [vocab] */
                t.ndim = 1;
                t.shape[0] = en->rows * en->cols;
                t.shape[1] = 0;
            }
            ts[nt++] = t;
        }
    }
    qv_status st = qv_st_write(path, ts, nt, NULL, err);
    free(grid_img);
    free(grid_vid);
    free(ts);
    return st;
}
