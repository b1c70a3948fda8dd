/* model.h — the whole Qwen2-VL checkpoint as the models see it: the folder opened and every tensor the
 * config implies checked (the vision encoder's table, then the decoder's: vision/encoder.h, lm/lm.h),
 * and the full tensor list in file order (what gen-weights writes, what `qv info` counts).
 *
 *   qv_ckpt *ck;
 *   if (qv_model_open(&ck, "models/tiny-qwen2vl", &err)) ...   // as qv_ckpt_open, then checked
 */
#ifndef QV_MODEL_H
#define QV_MODEL_H

#include "checkpoint.h"

/* qv_ckpt_open, then both weight tables checked (qv_weights_bind, nothing bound): a missing tensor, a shape the config does not
 * imply or a dtype other than bf16 is an error naming the folder and the tensor. */
qv_status qv_model_open(qv_ckpt **out, const char *dir, qv_err *err);

/* Every tensor of the model (vision, then language model) in file order; specs may be NULL to count.
 * Fits qv_genweights_params.tensor_specs. */
int qv_model_tensor_specs(const qv_model_config *mc, qv_tensor_spec *specs);

#endif
