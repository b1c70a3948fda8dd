/* checkpoint.h — the model folder (config + mapped weights) and the weight tables that say which
 * tensors a config implies.
 *
 *   qv_ckpt *ck;
 *   if (qv_ckpt_open(&ck, "path/to/Qwen2-VL-7B", &err)) ...
 *   const qv_tensor *w = qv_ckpt_get(ck, name);   // name in the released layout
 *
 * Names are always asked for in the released layout (`visual.*`, `model.*`, ...);
 * checkpoints re-saved by newer transformers (`model.visual.*`, `model.language_model.*`) are mapped
 * transparently. qv_ckpt_open reads the config and maps the files; which tensors must be there is each
 * model's weight table (lm/, vision/: qv_weight_def rows), checked and bound by qv_weights_bind (the
 * models' loaders; pipeline/model.h checks a whole folder). The core holds no tensor names. */
#ifndef QV_CHECKPOINT_H
#define QV_CHECKPOINT_H

#include "config.h"
#include "safetensors.h"

/* What `qv gen-weights --outliers` scales in a tensor (genweights.h): the hidden channels' elements of a
 * norm weight, their columns of an embedding, their rows of a projection that writes them (in the first
 * layer only). Set by the model's weight table, so the generator needs no tensor names. */
typedef enum { QV_OUT_NONE = 0, QV_OUT_CHANNELS, QV_OUT_COLUMNS, QV_OUT_ROWS_FIRST_LAYER } qv_outlier_role;

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[5];
    int outlier;         /* qv_outlier_role (QV_OUT_ROWS_FIRST_LAYER only on layer 0's tensor) */
} qv_tensor_spec;

/* One row of a model's weight table (a static array in lm/ or vision/), in file order. Shapes are
 * expressions over the config in the simplest form: indices into a dimension vector the model computes
 * from its hyperparameters (dims[]), so one table drives loading, validation and gen-weights. */
enum { QV_W_F32 = 1 };   /* flags: bound as a widened float copy (into the caller's arena), not in place */
enum { QV_WEIGHT_DIMS = 16 };   /* the most dimensions a model's table may index */
typedef struct {
    const char *name;    /* released-layout name; per-layer rows hold one %d (the layer index) */
    int per_layer;       /* a run of per-layer rows repeats for every layer before the next global row */
    int ndim;
    int8_t dim[5];       /* shape[i] = dims[dim[i]] */
    int field;           /* byte offset of the pointer it binds (in the layer struct for per-layer rows);
                            -1: checked, not bound */
    int flags;           /* QV_W_* */
    int when;            /* 0: always; k: the tensor exists only when dims[k - 1] != 0 */
    int outlier;         /* qv_outlier_role */
} qv_weight_def;

/* Fills specs (NULL: only counts) with the table's tensors in file order; returns the count. */
int qv_weights_specs(const qv_weight_def *tab, int n_tab, const int64_t *dims, int n_layers, qv_tensor_spec *specs);
/* Floats the QV_W_F32 rows take (the arena qv_weights_bind fills). */
int64_t qv_weights_f32_count(const qv_weight_def *tab, int n_tab, const int64_t *dims, int n_layers);

typedef struct qv_ckpt {
    qv_model_config cfg;
    qv_st *st;
    char *dir;
    int new_layout;          /* 1 when names are model.visual.* / model.language_model.* */
} qv_ckpt;

qv_status qv_ckpt_open(qv_ckpt **out, const char *dir, qv_err *err);
void qv_ckpt_free(qv_ckpt *ck);
/* Tensor by released-layout name; NULL when absent. */
const qv_tensor *qv_ckpt_get(const qv_ckpt *ck, const char *name);

/* Checks every tensor of the table against the mapping (present, the shape the config implies, bf16,
 * byte size) and, when model is not NULL, binds each row with field >= 0: a const uint16_t * into the
 * mapping at model + field (global rows) or layers + layer * layer_size + field (per-layer rows), or for
 * QV_W_F32 rows a const float * to a widened copy taken from f32 (qv_weights_f32_count floats). bytes
 * (may be NULL) grows by the bf16 bytes bound in place. Errors name the folder and the tensor. */
qv_status qv_weights_bind(const qv_ckpt *ck, const qv_weight_def *tab, int n_tab, const int64_t *dims, int n_layers,
                          void *model, void *layers, size_t layer_size, float *f32, uint64_t *bytes, qv_err *err);

#endif
