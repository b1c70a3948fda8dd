/* encoder.h — the Qwen2-VL vision encoder: patch embedding, transformer blocks with 2-D rotary
 * embedding and attention restricted to one temporal pair, and the 2x2 patch merger
 * (spec/qwen2vl-reference.md sections 4-5; transformers' Qwen2VisionTransformerPretrainedModel).
 *
 *   qv_vision *v;  qv_vision_ctx *c;
 *   if (qv_vision_create(&v, ck, &err)) ...                       // weight table, no copies
 *   if (qv_vision_ctx_create(&c, v, gh * gw, &err)) ...           // scratch for pairs of <= gh*gw patches
 *   for (int p = 0; p < t; p++)                                   // a video, pair by pair
 *       qv_vision_encode_pair(c, pool, QV_PREC_REF, px + (size_t)p * gh * gw * 1176, gh, gw,
 *                             out + (size_t)p * (gh * gw / 4) * D, NULL, NULL, &err);
 *   qv_vision_ctx_free(c); qv_vision_free(v);                    // v must outlive c; ck must outlive v
 *
 * Input rows are patches in merge-window order (pair, 2x2 block in raster order, patch in the block in
 * raster order), each 3*2*14*14 = 1176 normalized values (channel, frame, pixel row, pixel column) —
 * what vision/preprocess produces. Output rows are one per 2x2 block (one LM placeholder token), D wide.
 * Since attention never crosses a temporal pair, encoding pair by pair gives exactly what encoding a
 * whole video at once gives, with scratch memory bounded by one pair.
 *
 * A context is single-threaded from the caller's view (one encode at a time); several contexts may
 * share one qv_vision. Threads come from the pool passed to each call (NULL = calling thread only). */
#ifndef QV_VISION_ENCODER_H
#define QV_VISION_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "kernels.h"
#include "tensor.h"

/* Weight table: pointers into the checkpoint mapping (bf16 used in place), every shape checked
 * against the config at create time. Borrows ck: free the vision before the checkpoint. */
typedef struct qv_vision qv_vision;

qv_status qv_vision_create(qv_vision **out, const qv_ckpt *ck, qv_err *err);
void qv_vision_free(qv_vision *v);                       /* NULL-safe */
/* The encoder's weight table (checkpoint.h: released names, shapes, in file order; per-block rows
 * repeat depth times) and the dimensions its shapes index, for a vision config. */
const qv_weight_def *qv_vision_weights(const qv_vision_hparams *hp, int64_t dims[QV_WEIGHT_DIMS], int *n_rows);
const qv_vision_hparams *qv_vision_hparams_of(const qv_vision *v);
int qv_vision_patch_dim(const qv_vision *v);             /* in_chans*temporal*patch*patch (1176) */

/* Per-run scratch (activations, attention tiles, rotary tables), allocated once for pairs of at most
 * max_patches_per_pair patches (gh*gw); no allocation happens inside an encode call. */
typedef struct qv_vision_ctx qv_vision_ctx;

/* Bytes a context for max_patches_per_pair would allocate (for memory planning); 0 on overflow. */
uint64_t qv_vision_ctx_bytes(const qv_vision *v, int max_patches_per_pair);
qv_status qv_vision_ctx_create(qv_vision_ctx **out, const qv_vision *v, int max_patches_per_pair, qv_err *err);
void qv_vision_ctx_free(qv_vision_ctx *c);               /* NULL-safe */
int qv_vision_ctx_max_patches(const qv_vision_ctx *c);
/* Wall seconds spent since the context was made in: [0] linear layers (qv_linear), [1] attention,
 * [2] element-wise work (LayerNorm, rotary, activations, residual adds). For benchmarks. */
void qv_vision_ctx_profile(const qv_vision_ctx *c, double seconds[3]);

/* Encodes ONE temporal pair of a video (or one image): px [gh*gw][patch_dim] in merge-window order ->
 * out [gh*gw/4][D] (D = text hidden size). gh and gw must be multiples of the merge size (2) and
 * gh*gw <= the context's max. dump (may be NULL) receives "vision.patch_embed" and "vision.block.K"
 * ([gh*gw][E]) for this pair; the golden files hold all pairs concatenated in pair order.
 * prec: QV_PREC_REF (f32 activations, matches the float64 reference to ~1e-5) or QV_PREC_FAST
 * (bf16 activations in the linear layers; attention, norms and rotary stay f32). */
qv_status qv_vision_encode_pair(qv_vision_ctx *c, qv_pool *pool, qv_precision prec, const float *px, int gh,
                                int gw, float *out, qv_dump_fn dump, void *dump_user, qv_err *err);

/* Convenience: a whole grid (t pairs of gh x gw) pair by pair: px [t*gh*gw][patch_dim] ->
 * out [t*gh*gw/4][D]. dump is called once per pair per name; consecutive calls' rows concatenate.
 * No cancellation inside: a caller that must stop early encodes pair by pair (the engine does). */
qv_status qv_vision_encode(qv_vision_ctx *c, qv_pool *pool, qv_precision prec, const float *px, int t, int gh,
                           int gw, float *out, qv_dump_fn dump, void *dump_user, qv_err *err);

#endif
