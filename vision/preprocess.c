/* preprocess.c — resize (PIL-style bicubic), normalize, temporal pairs and patchify (see preprocess.h).
 *
 * Reference: ../shared/spec/qwen2vl-reference.md sections 3-4.
 *  - Images: PIL's ImagingResample (precompute_coeffs in double, normalize_coeffs_8bpc to 22-bit fixed
 *    point, horizontal pass into a uint8 image, then the vertical pass) — bit exact.
 *  - Video frames: ATen's separable antialiased bicubic (_compute_weights_aa, scalar_t = float), horizontal
 *    pass then vertical, both in float32 with no rounding in between; one round + clamp at the end.
 * The weights are computed once per resizer; the per-frame passes do no allocation. */
#include "preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PIL_BITS 22
/* video passes work on RB = 2 x 4 floats at a time (GCC vector extension: plain SSE2 on any x86-64;
 * 16-byte vectors so that the accumulators stay in registers without AVX) */
#define RB 8
typedef float v4 __attribute__((vector_size(16)));

/* One axis: for output i, taps [first[i], first[i] + count[i]) with weights w[i*ksize ..]. */
typedef struct {
    int n_out, ksize;
    int *first, *count;   /* [n_out] */
    float *wf;            /* [n_out*ksize] video weights */
    int32_t *wi;          /* [n_out*ksize] image weights, 22-bit fixed point */
} axis_w;

struct qv_resizer {
    int sw, sh, dw, dh;
    qv_resample_kind kind;
    axis_w ax, ay;        /* horizontal (x) and vertical (y) */
    float *tmpf;          /* video: [sh][dw*3] */
    float *rowf;          /* video: [n_rowf][3][sw][RB] one transposed row block per thread */
    int n_rowf;
    uint8_t *tmpu;        /* image: [sh][dw*3] */
    /* per-call arguments for the pool tasks */
    uint8_t *dst;
    const uint8_t *src;
    int stride;
};

/* PIL's bicubic_filter (a = -0.5), evaluated in its order. */
static double pil_bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* ATen's aa bicubic filter in float (cubic_convolution1/2 with A = -0.5). */
static float aten_bicubic(float x) {
    const float A = -0.5f;
    x = fabsf(x);
    if (x < 1.0f) return ((A + 2) * x - (A + 3)) * x * x + 1;
    if (x < 2.0f) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    return 0.0f;
}

static void axis_free(axis_w *a) {
    free(a->first);
    free(a->count);
    free(a->wf);
    free(a->wi);
    memset(a, 0, sizeof *a);
}

static qv_status axis_init(axis_w *a, int in, int out, qv_resample_kind kind, qv_err *err) {
    memset(a, 0, sizeof *a);
    double scale_d = (double)in / out, fs_d = scale_d < 1.0 ? 1.0 : scale_d;
    a->ksize = (int)ceil(2.0 * fs_d) * 2 + 1;
    a->n_out = out;
    size_t nk = (size_t)out * (size_t)a->ksize;
    a->first = calloc((size_t)out, sizeof *a->first);
    a->count = calloc((size_t)out, sizeof *a->count);
    if (kind == QV_RESAMPLE_IMAGE) a->wi = calloc(nk, sizeof *a->wi);
    else a->wf = calloc(nk, sizeof *a->wf);
    double *kd = malloc((size_t)a->ksize * sizeof *kd);
    if (!a->first || !a->count || !(a->wi || a->wf) || !kd) {
        free(kd);
        axis_free(a);
        return qv_errf(err, QV_ERR_NOMEM, "resize weights %d -> %d: out of memory", in, out);
    }
    for (int i = 0; i < out; i++) {
        int xmin, xmax;
        if (kind == QV_RESAMPLE_IMAGE) {
            /* PIL precompute_coeffs */
            double support = 2.0 * fs_d, center = (i + 0.5) * scale_d, ss = 1.0 / fs_d, ww = 0.0;
            xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            xmax = (int)(center + support + 0.5);
            if (xmax > in) xmax = in;
            xmax -= xmin;
            if (xmax > a->ksize) xmax = a->ksize;
            for (int x = 0; x < xmax; x++) {
                double w = pil_bicubic((x + xmin - center + 0.5) * ss);
                kd[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++) {
                if (ww != 0.0) kd[x] /= ww;
                /* normalize_coeffs_8bpc */
                double v = kd[x] * (double)(1 << PIL_BITS);
                a->wi[(size_t)i * a->ksize + x] = kd[x] < 0 ? (int32_t)(-0.5 + v) : (int32_t)(0.5 + v);
            }
        } else {
            /* ATen _compute_weights_aa with scalar_t = float */
            float scale = (float)in / (float)out;
            float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
            float center = (float)((double)scale * (i + 0.5));
            float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
            float total = 0.0f;
            xmin = (int)((double)(center - support) + 0.5);
            if (xmin < 0) xmin = 0;
            xmax = (int)((double)(center + support) + 0.5);
            if (xmax > in) xmax = in;
            xmax -= xmin;
            if (xmax > a->ksize) xmax = a->ksize;
            float *w = a->wf + (size_t)i * a->ksize;
            for (int x = 0; x < xmax; x++) {
                float arg = (float)(((double)((float)(x + xmin) - center) + 0.5) * (double)invscale);
                w[x] = aten_bicubic(arg);
                total += w[x];
            }
            if (total != 0.0f)
                for (int x = 0; x < xmax; x++) w[x] /= total;
        }
        if (xmax < 1) { /* cannot happen for in, out >= 1; keep the nearest sample to stay safe */
            xmax = 1;
            if (xmin > in - 1) xmin = in - 1;
            if (a->wi) a->wi[(size_t)i * a->ksize] = 1 << PIL_BITS;
            else a->wf[(size_t)i * a->ksize] = 1.0f;
        }
        a->first[i] = xmin;
        a->count[i] = xmax;
    }
    free(kd);
    return QV_OK;
}

qv_status qv_resizer_create(qv_resizer **out, int src_w, int src_h, int dst_w, int dst_h, qv_resample_kind kind,
                            qv_err *err) {
    *out = NULL;
    if (src_w < 1 || src_h < 1 || dst_w < 1 || dst_h < 1 || src_w > 65536 || src_h > 65536 || dst_w > 65536 ||
        dst_h > 65536)
        return qv_errf(err, QV_ERR_INVALID, "resize %dx%d -> %dx%d: size out of range", src_w, src_h, dst_w, dst_h);
    qv_resizer *r = calloc(1, sizeof *r);
    if (!r) return qv_errf(err, QV_ERR_NOMEM, "resizer: out of memory");
    r->sw = src_w, r->sh = src_h, r->dw = dst_w, r->dh = dst_h, r->kind = kind;
    qv_status st = axis_init(&r->ax, src_w, dst_w, kind, err);
    if (!st) st = axis_init(&r->ay, src_h, dst_h, kind, err);
    if (!st) {
        size_t n = (size_t)src_h * (size_t)dst_w * 3;
        if (kind == QV_RESAMPLE_IMAGE) r->tmpu = malloc(n);
        else {
            r->tmpf = malloc(n * sizeof(float));
            r->rowf = malloc((size_t)3 * RB * src_w * sizeof(float));
            r->n_rowf = 1;
            if (!r->rowf) free(r->tmpf), r->tmpf = NULL;
        }
        if (!r->tmpu && !r->tmpf) st = qv_errf(err, QV_ERR_NOMEM, "resizer scratch %zu bytes: out of memory", n * 4);
    }
    if (st) {
        qv_resizer_free(r);
        return st;
    }
    *out = r;
    return QV_OK;
}

void qv_resizer_free(qv_resizer *r) {
    if (!r) return;
    axis_free(&r->ax);
    axis_free(&r->ay);
    free(r->tmpf);
    free(r->rowf);
    free(r->tmpu);
    free(r);
}

static inline uint8_t clip8(int32_t v) {
    if (v >= (1 << PIL_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PIL_BITS);
}

/* Round half to even, then clamp to 0..255. Adding and subtracting 1.5 * 2^23 rounds a float of magnitude
 * below 2^22 to an integer in the current (nearest-even) mode: nearbyintf without a libm call. */
static inline uint8_t round_clamp(float v) {
    if (!(v > 0.0f)) return 0;   /* also NaN */
    if (v >= 255.0f) return 255;
    volatile float big = 12582912.0f;
    float r = (v + big) - big;
    return (uint8_t)(int)r;
}

/* Image horizontal pass of source rows [y0, y1) (PIL fixed point, into uint8). */
static void pass_h_image(qv_resizer *r, int y0, int y1) {
    const axis_w *a = &r->ax;
    const int dw = r->dw, ks = a->ksize;
    for (int y = y0; y < y1; y++) {
        const uint8_t *s = r->src + (size_t)y * r->stride;
        uint8_t *d = r->tmpu + (size_t)y * dw * 3;
        for (int x = 0; x < dw; x++) {
            const int32_t *w = a->wi + (size_t)x * ks;
            const uint8_t *p = s + (size_t)a->first[x] * 3;
            int32_t s0 = 1 << (PIL_BITS - 1), s1 = s0, s2 = s0;
            for (int j = 0; j < a->count[x]; j++) {
                s0 += p[3 * j] * w[j];
                s1 += p[3 * j + 1] * w[j];
                s2 += p[3 * j + 2] * w[j];
            }
            d[3 * x] = clip8(s0), d[3 * x + 1] = clip8(s1), d[3 * x + 2] = clip8(s2);
        }
    }
}

/* Video horizontal pass over source rows [y0, y1) in blocks of RB rows: the block is transposed into
 * T[c][x][RB] floats so that every tap is one RB-wide vector multiply-add (GCC vector extension, no ISA
 * flags). Each output still sums its taps in ascending order from 0, exactly as the scalar loop would. */

static void pass_h_video(qv_resizer *r, int y0, int y1, float *T) {
    const axis_w *a = &r->ax;
    const int dw = r->dw, ks = a->ksize, sw = r->sw;
    for (int yb = y0; yb < y1; yb += RB) {
        int nr = y1 - yb < RB ? y1 - yb : RB;
        for (int k = 0; k < RB; k++) {
            if (k >= nr) {
                for (size_t x = 0; x < (size_t)3 * sw; x++) T[x * RB + k] = 0.0f;
                continue;
            }
            const uint8_t *p = r->src + (size_t)(yb + k) * r->stride;
            float *t0 = T + k, *t1 = T + (size_t)sw * RB + k, *t2 = T + (size_t)2 * sw * RB + k;
            for (int x = 0; x < sw; x++) {
                t0[(size_t)x * RB] = (float)p[3 * x];
                t1[(size_t)x * RB] = (float)p[3 * x + 1];
                t2[(size_t)x * RB] = (float)p[3 * x + 2];
            }
        }
        for (int x = 0; x < dw; x++) {
            const float *w = a->wf + (size_t)x * ks;
            const int f = a->first[x], cnt = a->count[x];
            for (int c = 0; c < 3; c++) {
                const float *t = T + ((size_t)c * sw + f) * RB;
                v4 a0 = {0, 0, 0, 0}, a1 = {0, 0, 0, 0};
                for (int j = 0; j < cnt; j++) {
                    v4 u0, u1;
                    memcpy(&u0, t + (size_t)j * RB, sizeof u0);
                    memcpy(&u1, t + (size_t)j * RB + 4, sizeof u1);
                    a0 += u0 * w[j];
                    a1 += u1 * w[j];
                }
                float acc[RB];
                memcpy(acc, &a0, sizeof a0);
                memcpy(acc + 4, &a1, sizeof a1);
                for (int k = 0; k < nr; k++) r->tmpf[(size_t)(yb + k) * dw * 3 + 3 * x + c] = acc[k];
            }
        }
    }
}

/* Vertical pass of output rows [y0, y1); acc: [dw*3] floats or int32 of scratch on the stack side. */
static void pass_v(qv_resizer *r, int y0, int y1) {
    const axis_w *a = &r->ay;
    const int n = r->dw * 3, ks = a->ksize;
    for (int y = y0; y < y1; y++) {
        uint8_t *d = r->dst + (size_t)y * n;
        const int first = a->first[y], cnt = a->count[y];
        if (r->kind == QV_RESAMPLE_IMAGE) {
            const int32_t *w = a->wi + (size_t)y * ks;
            for (int x = 0; x < n; x++) {
                int32_t s = 1 << (PIL_BITS - 1);
                const uint8_t *p = r->tmpu + (size_t)first * n + x;
                for (int j = 0; j < cnt; j++) s += p[(size_t)j * n] * w[j];
                d[x] = clip8(s);
            }
        } else {
            const float *w = r->ay.wf + (size_t)y * ks;
            /* columns in vectors of RB; each output sums its taps in ascending order from 0 */
            int x = 0;
            for (; x + RB <= n; x += RB) {
                v4 a0 = {0, 0, 0, 0}, a1 = {0, 0, 0, 0};
                for (int j = 0; j < cnt; j++) {
                    const float *t = r->tmpf + (size_t)(first + j) * n + x;
                    v4 u0, u1;
                    memcpy(&u0, t, sizeof u0);
                    memcpy(&u1, t + 4, sizeof u1);
                    a0 += u0 * w[j];
                    a1 += u1 * w[j];
                }
                float acc[RB];
                memcpy(acc, &a0, sizeof a0);
                memcpy(acc + 4, &a1, sizeof a1);
                for (int k = 0; k < RB; k++) d[x + k] = round_clamp(acc[k]);
            }
            for (; x < n; x++) {
                float acc = 0.0f;
                for (int j = 0; j < cnt; j++) acc += r->tmpf[(size_t)(first + j) * n + x] * w[j];
                d[x] = round_clamp(acc);
            }
        }
    }
}

static void task_h(void *ctx, int ith, int nth) {
    qv_resizer *r = ctx;
    int64_t lo, hi;
    qv_split(r->sh, ith, nth, RB, &lo, &hi);
    if (r->kind == QV_RESAMPLE_IMAGE) {
        pass_h_image(r, (int)lo, (int)hi);
    } else if (ith < r->n_rowf) {   /* always: qv_resize_rgb sized the scratch for nth threads */
        pass_h_video(r, (int)lo, (int)hi, r->rowf + (size_t)ith * 3 * RB * r->sw);
    }
}

static void task_v(void *ctx, int ith, int nth) {
    qv_resizer *r = ctx;
    int64_t lo, hi;
    qv_split(r->dh, ith, nth, 1, &lo, &hi);
    pass_v(r, (int)lo, (int)hi);
}

void qv_resize_rgb(qv_resizer *r, uint8_t *dst, const uint8_t *src, int src_stride, qv_pool *pool) {
    int nth = qv_pool_size(pool);
    if (r->kind == QV_RESAMPLE_VIDEO && nth > r->n_rowf) {   /* first call with this pool size */
        float *p = realloc(r->rowf, (size_t)nth * 3 * RB * r->sw * sizeof(float));
        if (p) r->rowf = p, r->n_rowf = nth;
        else pool = NULL;   /* out of memory: fall back to one thread (one row was allocated at create) */
    }
    r->dst = dst;
    r->src = src;
    r->stride = src_stride;
    qv_pool_run(pool, task_h, r);
    qv_pool_run(pool, task_v, r);
}

/* ---- normalize + patchify ---------------------------------------------------------------------- */

static const double k_mean[3] = {0.48145466, 0.4578275, 0.40821073};
static const double k_std[3] = {0.26862954, 0.26130258, 0.27577711};

float qv_normalize_u8(int c, uint8_t v) {
    return (float)(((double)v * (1.0 / 255.0) - k_mean[c]) / k_std[c]);
}

typedef struct {
    float *px;
    const uint8_t *f[2];
    int h, w;
    float lut[3][256];
} patch_ctx;

static void task_patch(void *ctx, int ith, int nth) {
    patch_ctx *p = ctx;
    const int gh = p->h / QV_PATCH, gw = p->w / QV_PATCH, n_rows = gh * gw;
    const int bw_n = gw / QV_MERGE;
    int64_t lo, hi;
    qv_split(n_rows, ith, nth, 4, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int blk = (int)(r / 4), in = (int)(r % 4);
        int py = (blk / bw_n) * QV_MERGE + in / 2, pxx = (blk % bw_n) * QV_MERGE + in % 2;
        float *o = p->px + (size_t)r * QV_PATCH_DIM;
        for (int c = 0; c < 3; c++)
            for (int t = 0; t < 2; t++) {
                const float *lut = p->lut[c];
                for (int i = 0; i < QV_PATCH; i++) {
                    const uint8_t *s = p->f[t] + ((size_t)(py * QV_PATCH + i) * p->w + (size_t)pxx * QV_PATCH) * 3 + c;
                    for (int j = 0; j < QV_PATCH; j++) *o++ = lut[s[3 * j]];
                }
            }
    }
}

void qv_patchify_pair(float *px, const uint8_t *f0, const uint8_t *f1, int h, int w, qv_pool *pool) {
    patch_ctx p;
    p.px = px, p.f[0] = f0, p.f[1] = f1 ? f1 : f0, p.h = h, p.w = w;
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) p.lut[c][v] = qv_normalize_u8(c, (uint8_t)v);
    qv_pool_run(pool, task_patch, &p);
}

qv_status qv_patchify_frames(float **px, int *t, int *gh, int *gw, const uint8_t *frames, int n, int h, int w,
                             qv_pool *pool, qv_err *err) {
    *px = NULL;
    if (n < 1 || h < 28 || w < 28 || h % 28 || w % 28)
        return qv_errf(err, QV_ERR_INVALID, "patchify: %d frames of %dx%d (need >= 1 frame, sides multiple of 28)",
                       n, w, h);
    int tt = (n + 1) / 2, hh = h / QV_PATCH, ww = w / QV_PATCH;
    uint64_t rows, bytes;
    if (!qv_mul_ok((uint64_t)tt * hh, (uint64_t)ww, &rows) || !qv_mul_ok(rows, QV_PATCH_DIM * sizeof(float), &bytes))
        return qv_errf(err, QV_ERR_NOMEM, "patchify: too large");
    float *out = malloc(bytes ? bytes : 1);
    if (!out) return qv_errf(err, QV_ERR_NOMEM, "patchify: out of memory (%llu bytes)", (unsigned long long)bytes);
    size_t fsz = (size_t)h * w * 3, per = (size_t)hh * ww * QV_PATCH_DIM;
    for (int k = 0; k < tt; k++) {
        const uint8_t *f0 = frames + (size_t)(2 * k) * fsz;
        const uint8_t *f1 = 2 * k + 1 < n ? f0 + fsz : f0;
        qv_patchify_pair(out + (size_t)k * per, f0, f1, h, w, pool);
    }
    *px = out, *t = tt, *gh = hh, *gw = ww;
    return QV_OK;
}
