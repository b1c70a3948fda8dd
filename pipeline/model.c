/* model.c — the checkpoint checked against both models' weight tables (model.h). */
#include "model.h"

#include "lm.h"
#include "encoder.h"

/* the two tables in file order: vision, then the decoder */
typedef struct {
    const qv_weight_def *tab;
    int n_rows, n_layers;
    int64_t dims[QV_WEIGHT_DIMS];
} table;

static void tables(const qv_model_config *mc, table t[2]) {
    t[0].tab = qv_vision_weights(&mc->vision, t[0].dims, &t[0].n_rows);
    t[0].n_layers = mc->vision.depth;
    t[1].tab = qv_lm_weights(&mc->text, t[1].dims, &t[1].n_rows);
    t[1].n_layers = mc->text.n_layers;
}

qv_status qv_model_open(qv_ckpt **out, const char *dir, qv_err *err) {
    qv_ckpt *ck;
    qv_status rc = qv_ckpt_open(&ck, dir, err);
    if (rc) return rc;
    table t[2];
    tables(&ck->cfg, t);
    for (int i = 0; i < 2 && !rc; i++)
        rc = qv_weights_bind(ck, t[i].tab, t[i].n_rows, t[i].dims, t[i].n_layers, NULL, NULL, 0, NULL, NULL, err);
    if (rc) {
        qv_ckpt_free(ck);
        return rc;
    }
    *out = ck;
    return QV_OK;
}

int qv_model_tensor_specs(const qv_model_config *mc, qv_tensor_spec *specs) {
    table t[2];
    tables(mc, t);
    int n = 0;
    for (int i = 0; i < 2; i++)
        n += qv_weights_specs(t[i].tab, t[i].n_rows, t[i].dims, t[i].n_layers, specs ? specs + n : NULL);
    return n;
}
