/* checkpoint.c — the model folder (config + mapped weights, with the layout rename) and the driver of
 * the models' weight tables (checkpoint.h): expanding a table into tensor specs (gen-weights, `qv
 * info`), and checking and binding a table against the mapping (the loaders). The tables themselves,
 * with the tensor names, live with the models (lm/, vision/). */
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* one row of a table for layer l: name (printf with l when the row is per layer) and shape */
static void spec_of(const qv_weight_def *d, const int64_t *dims, int l, qv_tensor_spec *t) {
    if (d->per_layer) snprintf(t->name, sizeof t->name, d->name, l);
    else snprintf(t->name, sizeof t->name, "%s", d->name);
    t->ndim = d->ndim;
    for (int i = 0; i < 5; i++) t->shape[i] = i < d->ndim ? dims[d->dim[i]] : 0;
    t->outlier = d->outlier == QV_OUT_ROWS_FIRST_LAYER && l != 0 ? QV_OUT_NONE : d->outlier;
}

/* Calls fn for each tensor of the table in file order: a run of per-layer rows is repeated for every
 * layer before the next global row. Stops at fn's first non-zero return and returns it. */
static int walk(const qv_weight_def *tab, int n_tab, const int64_t *dims, int n_layers,
                int (*fn)(void *ctx, const qv_weight_def *d, int layer, const qv_tensor_spec *t), void *ctx) {
    qv_tensor_spec t;
    for (int i = 0; i < n_tab;) {
        int j = i + 1;
        if (tab[i].per_layer)
            while (j < n_tab && tab[j].per_layer) j++;
        for (int l = 0; l < (tab[i].per_layer ? n_layers : 1); l++)
            for (int k = i; k < j; k++) {
                if (tab[k].when && !dims[tab[k].when - 1]) continue;
                spec_of(&tab[k], dims, l, &t);
                int rc = fn(ctx, &tab[k], l, &t);
                if (rc) return rc;
            }
        i = j;
    }
    return 0;
}

typedef struct { qv_tensor_spec *specs; int n; } count_ctx;
static int count_fn(void *ctx, const qv_weight_def *d, int layer, const qv_tensor_spec *t) {
    count_ctx *c = ctx;
    if (c->specs) c->specs[c->n] = *t;
    c->n++;
    return 0;
}

int qv_weights_specs(const qv_weight_def *tab, int n_tab, const int64_t *dims, int n_layers, qv_tensor_spec *specs) {
    count_ctx c = {specs, 0};
    walk(tab, n_tab, dims, n_layers, count_fn, &c);
    return c.n;
}

typedef struct {
    const qv_ckpt *ck;
    void *model, *layers;
    size_t layer_size;
    float *f32;          /* next free float of the widened-copy arena */
    uint64_t *bytes;
    qv_err *err;
} bind_ctx;

static int bind_fn(void *ctx, const qv_weight_def *d, int layer, const qv_tensor_spec *want) {
    bind_ctx *b = ctx;
    const qv_tensor *t = qv_ckpt_get(b->ck, want->name);
    if (!t)
        return qv_errf(b->err, QV_ERR_FORMAT, "%s: tensor '%s' is missing (the config implies it)", b->ck->dir, want->name);
    int same = t->ndim == want->ndim;
    for (int i = 0; same && i < t->ndim; i++) same = t->shape[i] == want->shape[i];
    if (!same) {
        char have[160], exp[160];
        qv_tensor w = {.ndim = want->ndim};
        memcpy(w.shape, want->shape, sizeof want->shape);
        return qv_errf(b->err, QV_ERR_FORMAT, "%s: tensor '%s' has shape %s but config.json implies %s", b->ck->dir,
                       t->name, qv_shape_str(t, have, sizeof have), qv_shape_str(&w, exp, sizeof exp));
    }
    if (t->dtype != QV_BF16)
        return qv_errf(b->err, QV_ERR_UNSUPPORTED, "%s: tensor '%s' is %s; qv runs bf16 checkpoints (as released)",
                       b->ck->dir, t->name, qv_dtype_name(t->dtype));
    uint64_t numel = (uint64_t)qv_tensor_numel(t);
    if (t->nbytes != numel * 2)
        return qv_errf(b->err, QV_ERR_FORMAT, "%s: tensor '%s': byte size does not match its shape", b->ck->dir, t->name);
    if (!b->model || d->field < 0) return 0;
    char *base = d->per_layer ? (char *)b->layers + (size_t)layer * b->layer_size : (char *)b->model;
    if (d->flags & QV_W_F32) {   /* widened copy into the arena */
        qv_convert_to_f32(b->f32, t->data, t->dtype, (int64_t)numel);
        memcpy(base + d->field, &(const float *){b->f32}, sizeof(const float *));
        b->f32 += numel;
    } else {
        memcpy(base + d->field, &(const uint16_t *){t->data}, sizeof(const uint16_t *));
        if (b->bytes) *b->bytes += numel * 2;
    }
    return 0;
}

qv_status qv_weights_bind(const qv_ckpt *ck, const qv_weight_def *tab, int n_tab, const int64_t *dims, int n_layers,
                          void *model, void *layers, size_t layer_size, float *f32, uint64_t *bytes, qv_err *err) {
    bind_ctx b = {ck, model, layers, layer_size, f32, bytes, err};
    return (qv_status)walk(tab, n_tab, dims, n_layers, bind_fn, &b);
}

int64_t qv_weights_f32_count(const qv_weight_def *tab, int n_tab, const int64_t *dims, int n_layers) {
    int64_t n = 0;
    for (int i = 0; i < n_tab; i++) {
        if (!(tab[i].flags & QV_W_F32) || (tab[i].when && !dims[tab[i].when - 1])) continue;
        int64_t e = 1;
        for (int k = 0; k < tab[i].ndim; k++) e *= dims[tab[i].dim[k]];
        n += tab[i].per_layer ? e * n_layers : e;
    }
    return n;
}

/* released name -> name in a checkpoint re-saved by newer transformers */
static void new_layout_name(const char *name, char *out, size_t n) {
    if (strncmp(name, "visual.", 7) == 0) snprintf(out, n, "model.%s", name);
    else if (strncmp(name, "model.", 6) == 0) snprintf(out, n, "model.language_model.%s", name + 6);
    else snprintf(out, n, "%s", name);
}

const qv_tensor *qv_ckpt_get(const qv_ckpt *ck, const char *name) {
    if (!ck->new_layout) return qv_st_get(ck->st, name);
    char nm[160];
    new_layout_name(name, nm, sizeof nm);
    return qv_st_get(ck->st, nm);
}

void qv_ckpt_free(qv_ckpt *ck) {
    if (!ck) return;
    qv_st_free(ck->st);
    free(ck->dir);
    free(ck);
}

qv_status qv_ckpt_open(qv_ckpt **out, const char *dir, qv_err *err) {
    *out = NULL;
    qv_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck || !(ck->dir = strdup(dir))) {
        free(ck);
        return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    qv_status rc = qv_config_load_dir(&ck->cfg, dir, err);
    if (!rc) rc = qv_st_open(&ck->st, dir, err);
    if (rc) {
        qv_ckpt_free(ck);
        return rc;
    }
    for (int i = 0; i < qv_st_count(ck->st) && !ck->new_layout; i++) {
        const char *nm = qv_st_at(ck->st, i)->name;
        ck->new_layout = !strncmp(nm, "model.visual.", 13) || !strncmp(nm, "model.language_model.", 21);
    }
    *out = ck;
    return QV_OK;
}
