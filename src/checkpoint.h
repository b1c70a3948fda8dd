/* checkpoint.h — the list of tensors a Qwen2-VL config implies (names in the released layout, shapes),
 * and the model file set: config + mapped weights, validated against each other.
 *
 *   qv_ckpt *ck;
 *   if (qv_ckpt_open(&ck, "path/to/Qwen2-VL-7B", &err)) ...
 *   const qv_tensor *w = qv_ckpt_get(ck, "model.layers.0.self_attn.q_proj.weight"); // legacy name
 *
 * Names are always asked for in the released layout (`visual.*`, `model.*`, `lm_head.weight`);
 * checkpoints re-saved by newer transformers (`model.visual.*`, `model.language_model.*`) are mapped
 * transparently. qv_ckpt_open checks that every tensor the config implies is present with the right
 * shape and a float dtype. */
#ifndef QV_CHECKPOINT_H
#define QV_CHECKPOINT_H

#include "config.h"
#include "safetensors.h"

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[5];
} qv_tensor_spec;

/* Fills specs (may be NULL to count) with every tensor of the model, in a stable order (vision, then
 * language model); returns the count. */
int qv_ckpt_tensor_specs(const qv_model_config *mc, qv_tensor_spec *specs);

typedef struct qv_ckpt {
    qv_model_config cfg;
    qv_st *st;
    char *dir;
    int new_layout;          /* 1 when names are model.visual.* / model.language_model.* */
} qv_ckpt;

qv_status qv_ckpt_open(qv_ckpt **out, const char *dir, qv_err *err);
void qv_ckpt_free(qv_ckpt *ck);
/* Tensor by released-layout name; NULL when absent (qv_ckpt_open already checked required ones). */
const qv_tensor *qv_ckpt_get(const qv_ckpt *ck, const char *name);

#endif
