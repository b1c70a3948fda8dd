/* video.h — a video or still-image file -> the vision encoder's input, streamed as temporal pairs.
 *
 *   qv_media_opts o = qv_media_default_opts();               // reference defaults (fps 2, 4..768 frames)
 *   qv_media *m; qv_err err;
 *   if (qv_media_open(&m, "clip.mp4", &o, &err)) { ...err.msg...; }
 *   const qv_media_info *mi = qv_media_get_info(m);          // grid, size, indices, pts known here
 *   qv_media_run(m, on_pair, NULL, user, &err);              // on_pair(user, k, px[gh*gw][1176], mi)
 *   qv_media_free(m);
 *
 *   // short clips, all at once:  float *px; qv_media_load(&m, &px, path, &o, &err); ... free(px);
 *
 * Photos (JPEG, PNG, WebP, recognized by their first bytes) are decoded by pipeline/image.c exactly as the
 * reference's PIL decodes them; every other file (videos, BMP, TIFF, GIF ...) goes through FFmpeg.
 * Decoding: libavformat/libavcodec (send/receive/drain, decoder threads), libswscale to RGB24 at the
 * frame's own size; timestamps come from the frames. Frame count: a demux pass at open (no decoding, about
 * 0.4 s for a 20-minute 720p file) reads every packet's timestamp, so the count is what the file holds
 * (WebM has none; truncated files over-report) and a frame's index is the rank of its pts. Frames are
 * sampled by pipeline/sampler.c and resized/patchified by vision/preprocess.c. Access: sequential decode,
 * or (sparse targets) seeking to the keyframe before a target when that skips more than a few frames;
 * non-reference frames that are not targets are not decoded. Every mode gives the same frames. Memory: one
 * source frame, two resized frames and one pair of patches at a time, whatever the video length.
 * A target frame that fails to decode is replaced by the next frame that does (at the end of the stream:
 * the last one); info->indices / pts_ms then give the frame really used. */
#ifndef QV_VIDEO_H
#define QV_VIDEO_H

#include <stdint.h>

#include "core.h"
#include "threads.h"

enum { QV_MEDIA_AUTO = 0, QV_MEDIA_SEQUENTIAL = 1, QV_MEDIA_SEEK = 2 };

typedef struct qv_media_opts {
    double fps;             /* sampled frames per second of video (2.0) */
    int min_frames;         /* 4 */
    int max_frames;         /* 768 */
    int64_t min_pixels;     /* per frame; 0 = default (video 128*28*28, image 4*28*28) */
    int64_t max_pixels;     /* per frame; 0 = default (video: 768*28*28 capped by total_pixels/n*2; image
                               16384*28*28); for video a user value is capped by that budget */
    int64_t total_pixels;   /* video budget over all frames (24576*28*28; later releases 90316800) */
    double start_s, end_s;  /* restrict sampling to [start, end] seconds; < 0 = not set */
    int force_image;        /* treat the file as a still image (its first frame) */
    int autorotate;         /* apply a photo's EXIF orientation / a video's rotation metadata (the reference
                               does not: frames as stored) */
    int mode;               /* QV_MEDIA_AUTO (default) | QV_MEDIA_SEQUENTIAL | QV_MEDIA_SEEK */
    int n_threads;          /* decoder threads; 0 = all CPUs */
    qv_pool *pool;          /* resize/patchify workers; NULL = calling thread only. Not owned. */
    int (*abort_cb)(void *user); /* polled while counting frames and between frames (may be NULL); nonzero =
                               stop with QV_ERR_CANCELLED */
    void *abort_user;
} qv_media_opts;

qv_media_opts qv_media_default_opts(void);

typedef struct qv_media_info {
    int is_image;           /* 1: still image (one frame, repeated into one pair) */
    int src_w, src_h;       /* decoded frame size, pixels */
    int64_t total_frames;   /* frames in the stream (as counted; see above) */
    double stream_fps;      /* average frame rate used for sampling */
    double duration_s;      /* total_frames / stream_fps (0 for an image) */
    int n_frames;           /* sampled frames, before padding to an even count (image: 1) */
    int64_t *indices;       /* [n_frames] frame index of each sampled frame (owned by the qv_media) */
    double *pts_ms;         /* [n_frames] presentation time, ms since the first frame (owned) */
    int t, gh, gw;          /* grid: temporal pairs, patch rows, patch columns (14x14 patches) */
    int resized_h, resized_w; /* 14*gh, 14*gw */
    double min_pixels, max_pixels; /* the per-frame budgets that were used */
    int seek_mode;          /* 1 when the run may seek (chosen or forced) */
    int64_t n_decoded;      /* frames decoded by the last run (diagnostic) */
    int n_seeks;            /* seeks done by the last run (diagnostic) */
    const char *container;  /* demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" */
    const char *codec;      /* decoder name, e.g. "h264"; photos: "libjpeg-turbo", "libwebp", "ffmpeg-png" */
    int orientation;        /* EXIF orientation of a photo, or a video's display matrix as one (1..8, 1 = none) */
    int rotated;            /* 1 when autorotate turned the frames upright (src_w/src_h are then the turned size) */
} qv_media_info;

/* Called once per temporal pair k = 0..t-1, in order. px: [gh*gw][1176] float32, valid during the call
 * only. Return non-zero to stop: qv_media_run then returns QV_ERR_CANCELLED. */
typedef int (*qv_pair_fn)(void *user, int k, const float *px, const qv_media_info *info);
/* Optional, once per sampled frame j = 0..n_frames-1, before its pair: rgb [src_h][src_w][3] as decoded,
 * resized [resized_h][resized_w][3]. Valid during the call only. Non-zero stops, as above. */
typedef int (*qv_frame_fn)(void *user, int j, const uint8_t *rgb, const uint8_t *resized, const qv_media_info *info);

typedef struct qv_media qv_media;

/* Opens the file, counts frames, chooses frames and size (cheap: no frame is converted yet). */
qv_status qv_media_open(qv_media **out, const char *path, const qv_media_opts *opts, qv_err *err);
const qv_media_info *qv_media_get_info(const qv_media *m);
/* Decodes and streams the pairs. Callable once. on_pair and on_frame may be NULL. */
qv_status qv_media_run(qv_media *m, qv_pair_fn on_pair, qv_frame_fn on_frame, void *user, qv_err *err);
const char *qv_media_errmsg(const qv_media *m);   /* last error on this object ("" if none) */
void qv_media_free(qv_media *m);                  /* NULL-safe */

/* Convenience for short clips and images: open + run, all pixel values at once.
 * *px: [t*gh*gw][1176] malloc'd (caller frees); *out: the media for its info (caller frees). */
qv_status qv_media_load(qv_media **out, float **px, const char *path, const qv_media_opts *opts, qv_err *err);

#endif
