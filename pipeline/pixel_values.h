/* pixel_values.h — the second producer of encoder input (besides decoded media, pipeline/video.h): a
 * safetensors file with the golden case layout (pixel_values + image_grid_thw, pixel_values_videos +
 * video_grid_thw), for --pixel-values and the tests. It streams pairs through the same qv_pair_fn as
 * qv_media_run, so the engine encodes both the same way.
 *
 *   qv_pv_file *f;  qv_pv_open(&f, "case.safetensors", 1176, &err);
 *   int k = 1;                                         // 0 images, 1 videos
 *   const int64_t *g = qv_pv_grid(f, k, 0);           // (t, gh, gw) of the first video
 *   qv_pv_source src = qv_pv_source_of(f, k, 0);
 *   qv_pv_run(&src, on_pair, user, &err);              // on_pair(user, pair, px, NULL) for pair 0..t-1
 *   qv_pv_free(f); */
#ifndef QV_PIXEL_VALUES_H
#define QV_PIXEL_VALUES_H

#include <stdint.h>

#include "core.h"
#include "video.h"

typedef struct qv_pv_file qv_pv_file;

/* Reads the file (f32 copies of the pixel rows), checks grids against the row counts. */
qv_status qv_pv_open(qv_pv_file **out, const char *path, int patch_dim, qv_err *err);
void qv_pv_free(qv_pv_file *f);                                  /* NULL-safe */
int qv_pv_n_grids(const qv_pv_file *f, int kind);                 /* kind 0 images, 1 videos */
const int64_t *qv_pv_grid(const qv_pv_file *f, int kind, int i);  /* (t, gh, gw) of the i-th of its kind */

/* One input's rows in the file (borrowed from it). */
typedef struct {
    const float *px;         /* [t*gh*gw][patch_dim] */
    int t;
    int64_t per_pair;        /* gh*gw rows per pair */
    int patch_dim;
} qv_pv_source;

qv_pv_source qv_pv_source_of(const qv_pv_file *f, int kind, int i);
/* Streams the pairs like qv_media_run (info = NULL); a nonzero return of on_pair stops: QV_ERR_CANCELLED. */
qv_status qv_pv_run(const qv_pv_source *s, qv_pair_fn on_pair, void *user, qv_err *err);

#endif
