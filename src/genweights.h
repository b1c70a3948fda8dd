/* genweights.h — deterministic Qwen2-VL weights by the formula of spec/random-weights.md, and a
 * complete checkpoint folder written with them (sharded bf16 safetensors + index + config files).
 *
 *   qv_genweights_params p = qv_genweights_default_params();
 *   p.config_path = "config.json"; p.out_dir = "out";
 *   if (qv_genweights_write(&p, &err)) ...
 */
#ifndef QV_GENWEIGHTS_H
#define QV_GENWEIGHTS_H

#include "checkpoint.h"
#include "core.h"
#include <stdint.h>

uint64_t qv_fnv1a64(const char *s, size_t n);
/* bf16 bits of elements [start, start+count) of tensor `name` with shape (ndim, shape). */
void qv_gen_bf16(uint16_t *out, const char *name, int ndim, const int64_t *shape, uint64_t start, uint64_t count);

/* --outliers (genweights.c explains the choice): the formula checkpoint with QV_GEN_N_OUTLIERS fixed
 * hidden channels made "massive". qv_gen_outlier_dims: those channels for hidden size D, increasing
 * (returns how many; fewer only when D is too small to keep them apart). qv_gen_outliers: applies the
 * scaling its outlier role asks (t->outlier) to elements [start, start+count) of tensor t, already
 * filled by qv_gen_bf16. */
enum { QV_GEN_N_OUTLIERS = 5 };
int qv_gen_outlier_dims(int D, int *dims);
void qv_gen_outliers(uint16_t *out, const qv_tensor_spec *t, uint64_t start, uint64_t count, int D);

typedef struct {
    const char *config_path;     /* config.json to realize (its folder's generation_config.json and
                                    preprocessor_config.json are copied too, when present) */
    const char *out_dir;         /* created if missing */
    const char *tokenizer_from;  /* folder whose tokenizer files are copied beside the weights, or NULL */
    uint64_t shard_bytes;        /* max bytes of tensor data per shard (default 4e9, as released) */
    int n_threads;               /* 0 = all cores */
    int outliers;                /* 1: massive-activation channels (qv_gen_outliers) */
    void (*on_progress)(void *user, uint64_t done_bytes, uint64_t total_bytes);
    int (*abort_cb)(void *user);  /* polled between blocks (may be NULL); nonzero = stop, QV_ERR_CANCELLED */
    void *user;
    /* the tensors to write for a config (names, shapes, in file order; specs NULL: count): the models'
     * weight tables, e.g. qv_model_tensor_specs (pipeline/model.h); required */
    int (*tensor_specs)(const qv_model_config *mc, qv_tensor_spec *specs);
} qv_genweights_params;

qv_genweights_params qv_genweights_default_params(void);
qv_status qv_genweights_write(const qv_genweights_params *p, qv_err *err);

#endif
