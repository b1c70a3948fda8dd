/* sampler.h — which frames of a video to use and at what size: pure arithmetic, no FFmpeg.
 *
 *   qv_sample_opts so = qv_sample_default_opts();          // fps 2, min 4, max 768 frames
 *   int64_t idx[QV_MAX_SAMPLED]; int n;
 *   qv_sample_frames(idx, &n, total_frames, stream_fps, &so, &err);
 *   int64_t maxp = qv_video_max_pixels(QV_VIDEO_MIN_PIXELS, 0, QV_VIDEO_TOTAL_PIXELS, n);
 *   int h, w; qv_smart_resize(&h, &w, src_h, src_w, QV_VIDEO_MIN_PIXELS, maxp, &err);
 *
 * Follows ../shared/spec/qwen2vl-reference.md sections 1 (frame count, torch float32 linspace rounded
 * half to even, start/end) and 2 (smart_resize with factor 28, video and image pixel budgets), i.e.
 * qwen-vl-utils as released with Qwen2-VL and transformers' Qwen2VLImageProcessor. */
#ifndef QV_SAMPLER_H
#define QV_SAMPLER_H

#include <stdint.h>

#include "core.h"

#define QV_FPS              2.0
#define QV_FPS_MIN_FRAMES   4
#define QV_FPS_MAX_FRAMES   768
#define QV_FRAME_FACTOR     2
#define QV_IMAGE_FACTOR     28
#define QV_VIDEO_MIN_PIXELS   (128LL * 28 * 28)
#define QV_VIDEO_MAX_PIXELS   (768LL * 28 * 28)
#define QV_VIDEO_TOTAL_PIXELS (24576LL * 28 * 28)           /* default; later releases: 90316800 */
#define QV_IMAGE_MIN_PIXELS   (4LL * 28 * 28)
#define QV_IMAGE_MAX_PIXELS   (16384LL * 28 * 28)
#define QV_MAX_RATIO        200
/* upper bound of sampled frames for any option values (max_frames is capped at this) */
#define QV_MAX_SAMPLED      100000

typedef struct qv_sample_opts {
    double fps;          /* sampled frames per second of video (2.0) */
    int min_frames;      /* 4 */
    int max_frames;      /* 768 (capped at QV_MAX_SAMPLED) */
    double start_s;      /* seconds; < 0 = from the first frame */
    double end_s;        /* seconds; < 0 = to the last frame */
} qv_sample_opts;

qv_sample_opts qv_sample_default_opts(void);

/* Number of frames to sample from `total` frames (section 1), in [1, total]; 0 when total < 1.
 * total < 2 gives total (used whole, padded later). */
int qv_sample_count(int64_t total, double stream_fps, double fps, int min_frames, int max_frames);

/* round_half_even(torch.linspace(start, end, n, dtype=float32)) into out[n]. n >= 1. */
void qv_linspace_round_f32(int64_t *out, int64_t start, int64_t end, int n);

/* The frame indices of a video of `total` frames at `stream_fps`: out[QV_MAX_SAMPLED] receives *n
 * indices in [0, total). Errors: total < 1, stream_fps not positive, start after end or past the end. */
qv_status qv_sample_frames(int64_t *out, int *n, int64_t total, double stream_fps, const qv_sample_opts *o,
                           qv_err *err);

/* smart_resize (factor 28): the size (*out_h, *out_w) of each frame. Error when the aspect ratio is
 * above 200 or a size is not positive. */
qv_status qv_smart_resize(int *out_h, int *out_w, int h, int w, double min_pixels, double max_pixels,
                          qv_err *err);

/* The video max_pixels for n sampled frames: max(min(768*28*28, total_pixels/n*2), int(min_pixels*1.05)),
 * then capped by user_max when user_max > 0. Returned as a double because the reference compares
 * h*w against a float. */
double qv_video_max_pixels(int64_t min_pixels, int64_t user_max, int64_t total_pixels, int n);

#endif
