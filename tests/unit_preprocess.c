/* unit_preprocess.c — vision/preprocess.c against plain references written from the spec (section 3-4):
 *  - video resize (vectorized, threaded) vs a double-precision separable bicubic with antialias, on awkward
 *    sizes (odd widths, row counts not a multiple of the vector block, up- and downscaling): within 1 level;
 *  - the same bytes with 1 and 3 threads;
 *  - normalization constants; patch row order (merge window, then patch; channel, frame, row, column);
 *  - odd frame counts padded with the last frame, a single frame repeated. */
#include "test.h"
#include "threads.h"
#include "preprocess.h"

static double cubic(double x) {   /* Keys, a = -0.5 */
    const double a = -0.5;
    x = fabs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0;
}

/* weights of output i along an axis in -> out: taps [*first, *first + n) into w (double) */
static int weights(int in, int out, int i, int *first, double *w) {
    double scale = (double)in / out, fs = scale > 1 ? scale : 1, center = (i + 0.5) * scale;
    int lo = (int)(center - 2 * fs + 0.5), hi = (int)(center + 2 * fs + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in) hi = in;
    double s = 0;
    for (int j = lo; j < hi; j++) s += w[j - lo] = cubic((j - center + 0.5) / fs);
    for (int j = lo; j < hi; j++) w[j - lo] /= s;
    *first = lo;
    return hi - lo;
}

static void ref_resize(uint8_t *dst, const uint8_t *src, int sw, int sh, int dw, int dh) {
    double *tmp = calloc((size_t)sh * dw * 3, sizeof *tmp), w[4096];
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < dw; x++) {
            int f, n = weights(sw, dw, x, &f, w);
            for (int c = 0; c < 3; c++) {
                double s = 0;
                for (int j = 0; j < n; j++) s += w[j] * src[((size_t)y * sw + f + j) * 3 + c];
                tmp[((size_t)y * dw + x) * 3 + c] = s;
            }
        }
    for (int y = 0; y < dh; y++) {
        int f, n = weights(sh, dh, y, &f, w);
        for (int x = 0; x < dw * 3; x++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += w[j] * tmp[(size_t)(f + j) * dw * 3 + x];
            s = nearbyint(s);
            dst[(size_t)y * dw * 3 + x] = (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
        }
    }
    free(tmp);
}

static void check_resize(int sw, int sh, int dw, int dh, qv_pool *pool) {
    size_t ns = (size_t)sw * sh * 3, nd = (size_t)dw * dh * 3;
    uint8_t *src = malloc(ns), *a = malloc(nd), *b = malloc(nd), *r = malloc(nd);
    uint32_t s = 12345u + (uint32_t)sw * 7u + (uint32_t)sh;
    for (size_t i = 0; i < ns; i++) {   /* smooth gradient + noise + hard edges: exercises clamping */
        s = s * 1664525u + 1013904223u;
        size_t px = i / 3, x = px % (size_t)sw, y = px / (size_t)sw;
        int v = (int)((x * 255) / (size_t)sw) / 2 + (int)(s >> 27) + ((x / 5 + y / 3) % 2 ? 100 : 0);
        src[i] = (uint8_t)(v > 255 ? 255 : v);
    }
    qv_resizer *rz = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_resizer_create(&rz, sw, sh, dw, dh, QV_RESAMPLE_VIDEO, &err) == QV_OK, "%s", err.msg);
    if (!rz) return;
    qv_resize_rgb(rz, a, src, sw * 3, NULL);
    qv_resize_rgb(rz, b, src, sw * 3, pool);
    ref_resize(r, src, sw, sh, dw, dh);
    int worst = 0;
    size_t exact = 0;
    for (size_t i = 0; i < nd; i++) {
        int d = abs((int)a[i] - (int)r[i]);
        if (d > worst) worst = d;
        exact += d == 0;
    }
    CHECK_MSG(worst <= 1, "%dx%d -> %dx%d: %d levels from the double reference", sw, sh, dw, dh, worst);
    CHECK_MSG(exact * 100 >= nd * 99, "%dx%d -> %dx%d: only %zu of %zu exact", sw, sh, dw, dh, exact, nd);
    CHECK_MSG(memcmp(a, b, nd) == 0, "%dx%d -> %dx%d: threads change the result", sw, sh, dw, dh);
    /* padded source stride */
    uint8_t *padded = calloc((size_t)sh, (size_t)sw * 3 + 5);
    for (int y = 0; y < sh; y++) memcpy(padded + (size_t)y * (sw * 3 + 5), src + (size_t)y * sw * 3, (size_t)sw * 3);
    qv_resize_rgb(rz, b, padded, sw * 3 + 5, pool);
    CHECK(memcmp(a, b, nd) == 0);
    free(padded);
    qv_resizer_free(rz);
    free(src), free(a), free(b), free(r);
}

int main(void) {
    qv_pool *pool = qv_pool_create(3);
    check_resize(320, 180, 448, 252, pool);   /* sample_a: upscale */
    check_resize(37, 23, 56, 28, pool);
    check_resize(100, 7, 28, 28, pool);
    check_resize(13, 301, 28, 140, pool);
    check_resize(641, 359, 196, 112, pool);   /* downscale by ~3.2, odd sizes */
    check_resize(28, 28, 28, 28, pool);       /* identity */
    qv_resizer *rz = NULL;
    CHECK(qv_resizer_create(&rz, 0, 10, 28, 28, QV_RESAMPLE_VIDEO, NULL) != QV_OK && rz == NULL);
    qv_resizer_free(NULL);

    /* normalization: (v/255 - mean) / std per channel */
    CHECK(fabs(qv_normalize_u8(0, 0) - (0 - 0.48145466) / 0.26862954) < 1e-6);
    CHECK(fabs(qv_normalize_u8(1, 255) - (1 - 0.4578275) / 0.26130258) < 1e-6);
    CHECK(fabs(qv_normalize_u8(2, 128) - (128 / 255.0 - 0.40821073) / 0.27577711) < 1e-6);

    /* patch order: frames whose bytes encode (frame, y, x, c) through a lookup, 56x84 (grid 4x6) */
    const int h = 56, w = 84, gh = h / 14, gw = w / 14;
    uint8_t *fr = malloc((size_t)3 * h * w * 3);
    for (int f = 0; f < 3; f++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) fr[(((size_t)f * h + y) * w + x) * 3 + c] = (uint8_t)((f * 91 + y * 7 + x * 3 + c * 50) & 255);
    float *px = NULL;
    int t = 0, th = 0, tw = 0;
    CHECK(qv_patchify_frames(&px, &t, &th, &tw, fr, 3, h, w, pool, NULL) == QV_OK);
    CHECK(t == 2 && th == gh && tw == gw);
    int bad = 0;
    for (int pair = 0; pair < t && px; pair++)
        for (int bh = 0; bh < gh / 2; bh++)
            for (int bw = 0; bw < gw / 2; bw++)
                for (int ph = 0; ph < 2; ph++)
                    for (int pw = 0; pw < 2; pw++) {
                        long row = (long)pair * gh * gw + ((long)bh * (gw / 2) + bw) * 4 + ph * 2 + pw;
                        const float *o = px + row * 1176;
                        for (int c = 0; c < 3; c++)
                            for (int tt = 0; tt < 2; tt++)
                                for (int i = 0; i < 14; i++)
                                    for (int j = 0; j < 14; j++) {
                                        int f = 2 * pair + tt > 2 ? 2 : 2 * pair + tt;   /* pad with the last */
                                        int y = (bh * 2 + ph) * 14 + i, x = (bw * 2 + pw) * 14 + j;
                                        float want = qv_normalize_u8(c, fr[(((size_t)f * h + y) * w + x) * 3 + c]);
                                        bad += o[((c * 2 + tt) * 14 + i) * 14 + j] != want;
                                    }
                    }
    CHECK_MSG(bad == 0, "%d values out of place", bad);
    free(px);
    /* one frame: repeated into one pair */
    CHECK(qv_patchify_frames(&px, &t, &th, &tw, fr, 1, h, w, NULL, NULL) == QV_OK && t == 1);
    if (px) CHECK(memcmp(px, px + 196, 196 * sizeof(float)) == 0);   /* channel 0: frame 0 block == frame 1 block */
    free(px);
    CHECK(qv_patchify_frames(&px, &t, &th, &tw, fr, 1, 50, w, NULL, NULL) != QV_OK);   /* not a multiple of 28 */
    free(fr);
    qv_pool_free(pool);
    return test_done();
}
