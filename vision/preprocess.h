/* preprocess.h — RGB frames -> encoder input: resize, normalize, temporal pairs, patchify.
 *
 *   qv_resizer *rz; qv_resizer_create(&rz, src_w, src_h, dst_w, dst_h, QV_RESAMPLE_VIDEO, &err);
 *   qv_resize_rgb(rz, resized, rgb, src_w * 3, pool);         // once per frame, weights reused
 *   qv_patchify_pair(px, resized0, resized1, dst_h, dst_w, pool);   // px [(h/14)*(w/14)][1176]
 *   qv_resizer_free(rz);
 *
 * Follows ../shared/spec/qwen2vl-reference.md sections 3 and 4: PIL's bicubic filter (a = -0.5, antialias
 * support scaled by max(in/out, 1)); images in PIL's 22-bit fixed point, horizontal pass into uint8, then
 * vertical; video frames (torchvision bicubic + antialias) with the same weights in floating point and one
 * rounding at the end. Normalization with the CLIP mean/std; rows of 1176 values in merge-window order.
 * Knows nothing of FFmpeg: frames are plain RGB24 [h][stride] buffers. */
#ifndef QV_PREPROCESS_H
#define QV_PREPROCESS_H

#include <stdint.h>

#include "config.h"   /* QV_PATCH, QV_MERGE, QV_TEMPORAL_PATCH: the geometry qv_config_load accepts */
#include "core.h"
#include "threads.h"

#define QV_PATCH_DIM      (3 * QV_TEMPORAL_PATCH * QV_PATCH * QV_PATCH)   /* 1176 */

typedef enum {
    QV_RESAMPLE_VIDEO = 0,   /* float weights, both passes unrounded, round + clamp once (torchvision) */
    QV_RESAMPLE_IMAGE = 1,   /* PIL fixed point: horizontal pass rounded into uint8, then vertical */
} qv_resample_kind;

/* A resizer for one (src size, dst size, kind): filter weights computed once, scratch owned. One call
 * at a time per resizer (it owns the intermediate buffer). */
typedef struct qv_resizer qv_resizer;

qv_status qv_resizer_create(qv_resizer **out, int src_w, int src_h, int dst_w, int dst_h, qv_resample_kind kind,
                            qv_err *err);
void qv_resizer_free(qv_resizer *r);                 /* NULL-safe */

/* dst [dst_h][dst_w][3] <- src [src_h][src_stride bytes] RGB24. pool may be NULL (single thread). */
void qv_resize_rgb(qv_resizer *r, uint8_t *dst, const uint8_t *src, int src_stride, qv_pool *pool);

/* Normalized value of channel c for byte v: (v/255 - mean[c]) / std[c], as float32. */
float qv_normalize_u8(int c, uint8_t v);

/* One temporal pair -> px [(h/14)*(w/14)][1176]. f0, f1: [h][w][3] (f1 may equal f0 for padding).
 * h and w must be multiples of 28. Row order: 2x2 merge block in raster order, then the 4 patches of the
 * block in raster order; inside a row: channel, frame of the pair, pixel row, pixel column. */
void qv_patchify_pair(float *px, const uint8_t *f0, const uint8_t *f1, int h, int w, qv_pool *pool);

/* Whole clip at once: frames [n][h][w][3] (already resized) -> *px [t*gh*gw][1176] (malloc'd, caller
 * frees), odd n padded with the last frame, n == 1 repeated (an image). */
qv_status qv_patchify_frames(float **px, int *t, int *gh, int *gw, const uint8_t *frames, int n, int h, int w,
                             qv_pool *pool, qv_err *err);

#endif
