/* lm_golden.h — the golden language-model cases (fixtures/golden/tiny_*.json + .safetensors) as the LM
 * tests read them: prompt ids, grids, rope delta, greedy ids and gaps, vision rows, positions; and a
 * dump collector for lm.layer.K / lm.norm. Shared by fixture_lm.c and fixture_quant.c. */
#ifndef QV_TEST_LM_GOLDEN_H
#define QV_TEST_LM_GOLDEN_H

#include "test.h"

#include <cjson/cJSON.h>

typedef struct {
    int D, n;
    float *layer[8];      /* [n][D] per decoder layer */
    float *norm;          /* [n][D] */
    int64_t rows_layer[8], rows_norm;
} dumps;

static void on_dump(void *u, const char *name, const float *d, int64_t rows, int64_t cols) {
    dumps *s = u;
    float *dst;
    int64_t *at;
    int k;
    if (sscanf(name, "lm.layer.%d", &k) == 1 && k >= 0 && k < 8) { dst = s->layer[k]; at = &s->rows_layer[k]; }
    else if (!strcmp(name, "lm.norm")) { dst = s->norm; at = &s->rows_norm; }
    else return;
    if (!dst || cols != s->D || *at + rows > s->n) { *at = -1000000; return; }
    memcpy(dst + *at * cols, d, (size_t)(rows * cols) * sizeof *d);
    *at += rows;
}

static int64_t *gold_i64(const qv_st *st, const char *name, int64_t *numel) {
    const qv_tensor *t = qv_st_get(st, name);
    if (!t || t->dtype != QV_I64) return NULL;
    int64_t n = qv_tensor_numel(t);
    int64_t *v = malloc((size_t)n * sizeof *v);
    memcpy(v, t->data, (size_t)n * sizeof *v);
    if (numel) *numel = n;
    return v;
}

static int json_ints(const cJSON *a, int32_t *out, int max) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (n < max) out[n++] = (int32_t)e->valuedouble;
    return n;
}

static int json_grids(const cJSON *a, int (*g)[3], int max) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (n >= max || cJSON_GetArraySize(e) != 3) break;
        for (int k = 0; k < 3; k++) g[n][k] = cJSON_GetArrayItem(e, k)->valueint;
        n++;
    }
    return n;
}

typedef struct {
    const char *label;
    cJSON *js;
    qv_st *st;
    int32_t ids[1024];
    int n;
    int img[8][3], vid[8][3], n_img, n_vid;
    int64_t delta;
    int32_t greedy[64];
    double gap[64];
    int n_greedy;
    float *vis;           /* [n_vis][D] */
    int n_vis;
    int64_t *pos;         /* [3][n] */
} gcase;

static int load_case(gcase *c, const char *label, int D) {
    memset(c, 0, sizeof *c);
    c->label = label;
    char rel[128];
    snprintf(rel, sizeof rel, "golden/%s.json", label);
    char *path = test_fixture(rel), *txt = NULL;
    size_t len;
    qv_err err;
    int ok = qv_read_file(path, &txt, &len, 0, &err) == QV_OK;
    free(path);
    if (!ok) { fprintf(stderr, "%s: %s\n", label, err.msg); return 0; }
    c->js = cJSON_Parse(txt);
    free(txt);
    if (!c->js) return 0;
    c->n = json_ints(cJSON_GetObjectItem(c->js, "input_ids"), c->ids, 1024);
    c->n_img = json_grids(cJSON_GetObjectItem(c->js, "image_grid_thw"), c->img, 8);
    c->n_vid = json_grids(cJSON_GetObjectItem(c->js, "video_grid_thw"), c->vid, 8);
    c->delta = (int64_t)cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c->js, "rope_deltas"), 0), 0)->valuedouble;
    c->n_greedy = json_ints(cJSON_GetObjectItem(c->js, "greedy_ids"), c->greedy, 64);
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(c->js, "greedy_top1_top2_gap")) if (k < 64) c->gap[k++] = e->valuedouble;
    snprintf(rel, sizeof rel, "golden/%s.safetensors", label);
    path = test_fixture(rel);
    ok = qv_st_open(&c->st, path, &err) == QV_OK;
    free(path);
    if (!ok) { fprintf(stderr, "%s: %s\n", label, err.msg); return 0; }
    int64_t nv = 0;
    c->vis = test_gold_f32(c->st, "vision_embeds", &nv);
    c->n_vis = (int)(nv / D);
    int64_t np = 0;
    c->pos = gold_i64(c->st, "position_ids", &np);
    return c->pos && np == 3 * (int64_t)c->n && c->n > 0;
}

static void free_case(gcase *c) {
    cJSON_Delete(c->js);
    qv_st_free(c->st);
    free(c->vis);
    free(c->pos);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

#endif
