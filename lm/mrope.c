/* mrope.c — M-RoPE positions for a whole prompt: transformers' Qwen2VLModel.get_rope_index
 * (spec/qwen2vl-reference.md section 6). Text continues at (largest position so far) + 1 on all three
 * rows; a vision span of grid (t, gh/m, gw/m) starting at s gives token (i, y, x) the positions
 * (s+i, s+y, s+x); the text after it starts at s + max(t, gh/m, gw/m). Qwen2-VL's temporal index is the
 * pair index itself (no seconds scaling, unlike Qwen2.5-VL). Spans are matched to grids in order of
 * appearance of their kind, as the reference does (image_index / video_index). */
#include "lm.h"

qv_status qv_mrope_positions(const int32_t *ids, int n, const int (*image_grids)[3], int n_images,
                             const int (*video_grids)[3], int n_videos, const qv_text_hparams *hp,
                             int spatial_merge, int64_t *pos, int64_t *rope_delta, qv_err *err) {
    if (!ids || n <= 0 || !pos || !hp || spatial_merge <= 0 || n_images < 0 || n_videos < 0 ||
        (n_images && !image_grids) || (n_videos && !video_grids))
        return qv_errf(err, QV_ERR_INVALID, "mrope positions: bad arguments (n %d, merge %d)", n, spatial_merge);
    int64_t *pt = pos, *ph = pos + n, *pw = pos + 2 * (int64_t)n;
    int64_t next = 0;          /* first position of the next text token: max so far + 1 */
    int img = 0, vid = 0;
    int i = 0;
    while (i < n) {
        int32_t id = ids[i];
        int is_img = id == hp->image_token_id, is_vid = id == hp->video_token_id;
        if (!is_img && !is_vid) {
            pt[i] = ph[i] = pw[i] = next;
            next++;
            i++;
            continue;
        }
        const int *g;
        if (is_img) {
            if (img >= n_images)
                return qv_errf(err, QV_ERR_INVALID, "mrope positions: image span %d at token %d has no grid "
                               "(%d image grids given)", img + 1, i, n_images);
            g = image_grids[img++];
        } else {
            if (vid >= n_videos)
                return qv_errf(err, QV_ERR_INVALID, "mrope positions: video span %d at token %d has no grid "
                               "(%d video grids given)", vid + 1, i, n_videos);
            g = video_grids[vid++];
        }
        int t = g[0], gh = g[1], gw = g[2];
        if (t <= 0 || gh <= 0 || gw <= 0 || gh % spatial_merge || gw % spatial_merge)
            return qv_errf(err, QV_ERR_INVALID, "mrope positions: bad %s grid (%d, %d, %d) for merge %d",
                           is_img ? "image" : "video", t, gh, gw, spatial_merge);
        int64_t lh = gh / spatial_merge, lw = gw / spatial_merge;
        int64_t len = (int64_t)t * lh * lw;
        if (len > (int64_t)(n - i))
            return qv_errf(err, QV_ERR_INVALID, "mrope positions: %s span at token %d needs %lld tokens, "
                           "only %d remain", is_img ? "image" : "video", i, (long long)len, n - i);
        for (int64_t k = 0; k < len; k++)
            if (ids[i + k] != id)
                return qv_errf(err, QV_ERR_INVALID, "mrope positions: %s span at token %d is cut short at "
                               "token %lld (grid (%d, %d, %d) needs %lld pads)", is_img ? "image" : "video", i,
                               (long long)(i + k), t, gh, gw, (long long)len);
        int64_t s = next, k = i;
        for (int64_t ti = 0; ti < t; ti++)
            for (int64_t y = 0; y < lh; y++)
                for (int64_t x = 0; x < lw; x++, k++) {
                    pt[k] = s + ti;
                    ph[k] = s + y;
                    pw[k] = s + x;
                }
        int64_t mx = t;
        if (lh > mx) mx = lh;
        if (lw > mx) mx = lw;
        next = s + mx;         /* largest position in the span is s + max - 1 */
        i += (int)len;
    }
    if (img != n_images || vid != n_videos)
        return qv_errf(err, QV_ERR_INVALID, "mrope positions: %d image and %d video grids given, the prompt has "
                       "%d image and %d video spans", n_images, n_videos, img, vid);
    if (rope_delta) *rope_delta = next - n;   /* max_position + 1 - n */
    return QV_OK;
}
