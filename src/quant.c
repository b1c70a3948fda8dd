/* quant.c — 8-bit weights (quant.h): the format, the scalar reference kernels (the spec quant_avx2.c is
 * tested against) and the qv_linear_q8 driver (threads over output columns from an atomic counter, L2-sized
 * panels of weight rows). Which kernels run is the kernel table's choice (qv_ktable.q8()) and the scratch is
 * the kernel driver's per-thread scratch (qv_kernel_scratch): one dispatcher, one scratch allocator.
 * Follows llama.cpp's Q8_0 (blocks of 32, symmetric, scale = maxabs / 127), with f32 scales kept apart
 * from the int8 values so every weight row is contiguous and 32-byte aligned. */
#include "quant.h"
#include "kernels.h"
#include "kernels_isa.h"
#include "tensor.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- scalar reference ---- */

static int8_t q_of(float v) {   /* v = x / d, |v| <= 127 up to rounding; NaN -> 127 (no UB) */
    v = fmaxf(-127.0f, fminf(127.0f, v));
    return (int8_t)(int)nearbyintf(v);
}

/* the weights' block scale: amax / 127 rounded up to the next IEEE half, so no value passes 127 d */
uint16_t qv_q8_half_scale(float amax) {
    float s = amax / 127.0f;
    uint16_t h = qv_f32_to_f16(s);
    if (qv_f16_to_f32(h) < s) h++;   /* s > 0 here: the next half up */
    return h;
}

/* one block of 32 -> int8 and its scale: activations' f32 amax / 127 into *d, or (dh) the weights' half
 * scale (qv_q8_half_scale); 0 when that scale is past the half range (|w| > 8e6). quant_avx2.c's quant_block
 * does the same operations. */
static int ref_quant_block(int8_t *q, float *d, uint16_t *dh, const float *x) {
    float amax = 0.0f;
    for (int t = 0; t < QV_Q8_BLOCK; t++) amax = fabsf(x[t]) > amax ? fabsf(x[t]) : amax;
    float s = amax / 127.0f;
    if (dh) {
        *dh = qv_q8_half_scale(amax);
        if ((*dh & 0x7c00) == 0x7c00) return 0;
        s = qv_f16_to_f32(*dh);
    } else {
        *d = s;
    }
    const float id = s != 0.0f ? 1.0f / s : 0.0f;
    for (int t = 0; t < QV_Q8_BLOCK; t++) q[t] = q_of(x[t] * id);
    return 1;
}

static void ref_quant_f32(int8_t *q, float *d, const float *x, int k) {
    for (int b = 0; b < k / QV_Q8_BLOCK; b++) ref_quant_block(q + b * QV_Q8_BLOCK, d + b, NULL, x + b * QV_Q8_BLOCK);
}

static int ref_quant_bf16(int8_t *q, uint16_t *dh, const uint16_t *w, int k) {
    for (int b = 0; b < k / QV_Q8_BLOCK; b++) {
        float buf[QV_Q8_BLOCK];
        for (int t = 0; t < QV_Q8_BLOCK; t++) {
            uint16_t h = w[b * QV_Q8_BLOCK + t];
            if ((h & 0x7f80) == 0x7f80) return 0;   /* inf or NaN */
            buf[t] = qv_bf16_to_f32(h);
        }
        if (!ref_quant_block(q + b * QV_Q8_BLOCK, NULL, dh + b, buf)) return 0;
    }
    return 1;
}

/* one block's integer sum: 8-bit weights (q4 == 0) or 4-bit ones (llama.cpp's nibble order) */
static int32_t ref_block(const int8_t *x, const void *w, int q4) {
    int32_t s = 0;
    const int8_t *w8 = w;
    const uint8_t *w4 = w;
    if (q4)
        for (int t = 0; t < 16; t++) s += (int32_t)x[t] * ((w4[t] & 15) - 8) + (int32_t)x[16 + t] * ((w4[t] >> 4) - 8);
    else
        for (int t = 0; t < QV_Q8_BLOCK; t++) s += (int32_t)x[t] * w8[t];
    return s;
}

/* x . w over k: per block (dx * dw) * the integer sum, accumulated in block order */
float qv_q8_dot_ref(const int8_t *xq, const float *xd, const void *wq, const uint16_t *wd, int k, int q4) {
    float acc = 0.0f;
    for (int b = 0; b < k / QV_Q8_BLOCK; b++)
        acc += (xd[b] * qv_f16_to_f32(wd[b])) * (float)ref_block(xq + b * 32, (const char *)wq + b * (q4 ? 16 : 32), q4);
    return acc;
}

static void ref_tile_any(float *Y, int ldy, const int8_t *xq, const float *xd, int mr, const void *wq,
                         const uint16_t *wd, int nr, int k, const float *bias, int q4) {
    const int nb = k / QV_Q8_BLOCK;
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float s = qv_q8_dot_ref(xq + (size_t)i * k, xd + (size_t)i * nb, (const char *)wq + (size_t)j * (q4 ? k / 2 : k),
                              wd + (size_t)j * nb, k, q4);
            Y[(size_t)i * ldy + j] = (bias ? bias[j] : 0.0f) + s;
        }
}

static void ref_tile(float *Y, int ldy, const int8_t *xq, const float *xd, int mr, const int8_t *wq,
                     const uint16_t *wd, int nr, int k, const float *bias) {
    ref_tile_any(Y, ldy, xq, xd, mr, wq, wd, nr, k, bias, 0);
}

static void ref_tile4(float *Y, int ldy, const int8_t *xq, const float *xd, int mr, const uint8_t *wq,
                      const uint16_t *wd, int nr, int k, const float *bias) {
    ref_tile_any(Y, ldy, xq, xd, mr, wq, wd, nr, k, bias, 1);
}

static void ref_dequant(float *dst, const int8_t *q, const uint16_t *d, int k) {
    for (int t = 0; t < k; t++) dst[t] = qv_f16_to_f32(d[t / QV_Q8_BLOCK]) * (float)q[t];
}

static void ref_dequant4(float *dst, const uint8_t *q, const uint16_t *d, int k) {
    for (int b = 0; b < k / QV_Q8_BLOCK; b++) {
        const float s = qv_f16_to_f32(d[b]);
        for (int t = 0; t < 16; t++) {
            dst[b * 32 + t] = s * (float)((q[b * 16 + t] & 15) - 8);
            dst[b * 32 + 16 + t] = s * (float)((q[b * 16 + t] >> 4) - 8);
        }
    }
}

/* one row to 4 bits (qv_q4_bytes); 0 if a weight is not finite */
static int quant4_bf16(uint8_t *q, uint16_t *dh, const uint16_t *w, int k) {
    for (int b = 0; b < k / QV_Q8_BLOCK; b++) {
        float v[32], m = 0.0f;
        for (int t = 0; t < 32; t++) {
            uint16_t h = w[b * 32 + t];
            if ((h & 0x7f80) == 0x7f80) return 0;
            v[t] = qv_bf16_to_f32(h);
            if (fabsf(v[t]) > fabsf(m)) m = v[t];
        }
        dh[b] = qv_f32_to_f16(m / -8.0f);
        if ((dh[b] & 0x7c00) == 0x7c00) return 0;   /* past the half range (|w| > 5e5) */
        const float d = qv_f16_to_f32(dh[b]), id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int t = 0; t < 16; t++) {
            int lo = (int)nearbyintf(fmaxf(-8.0f, fminf(7.0f, v[t] * id))) + 8;
            int hi = (int)nearbyintf(fmaxf(-8.0f, fminf(7.0f, v[16 + t] * id))) + 8;
            q[b * 16 + t] = (uint8_t)(lo | hi << 4);
        }
    }
    return 1;
}

const qv_q8_table qv_q8_scalar = {"scalar", ref_quant_bf16, ref_quant_f32, ref_tile, ref_dequant, ref_tile4, ref_dequant4,
                                   NULL, 0};

void qv_q4_prep(int8_t *xp, int32_t *xs, const int8_t *xq, int k, int pairs) {
    const int nb = k / QV_Q8_BLOCK, np = pairs ? nb / 2 : 0;
    for (int p = 0; p < np; p++)   /* A0-15 B0-15 A16-31 B16-31 */
        for (int q = 0; q < 4; q++) memcpy(xp + p * 64 + q * 16, xq + p * 64 + (q & 1) * 32 + (q >> 1) * 16, 16);
    memcpy(xp + np * 64, xq + np * 64, (size_t)(k - np * 64));
    for (int l = 0; l < k / 4; l++) xs[l] = -8 * (xp[4 * l] + xp[4 * l + 1] + xp[4 * l + 2] + xp[4 * l + 3]);
}

/* ---- choice of implementation ---- */

static _Atomic(const qv_q8_table *) g_forced;   /* qv_q8_force (tests) */

static const qv_q8_table *tab(void) {
    const qv_q8_table *t = atomic_load_explicit(&g_forced, memory_order_relaxed);
    if (t) return t;
    const qv_ktable *kt = qv_kernels_table();   /* the kernel table has checked the CPU */
    t = kt->q8 ? kt->q8() : NULL;
    return t ? t : &qv_q8_scalar;
}

const char *qv_q8_kernels_name(void) { return tab()->name; }

int qv_q8_force(const char *name) {
    const qv_q8_table *t = !name ? NULL : !strcmp(name, "scalar") ? &qv_q8_scalar : NULL;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (name && !strcmp(name, "avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        t = qv_q8_table_avx2();
    if (name && !strcmp(name, "avx512") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        t = qv_q8_table_avx512();
#endif
    return qv_q8_set_table(t);
}

int qv_q8_set_table(const qv_q8_table *t) {
    if (!t) return 0;
    atomic_store(&g_forced, t);
    return 1;
}

/* ---- format ---- */

static size_t al64(size_t x) { return (x + 63) & ~(size_t)63; }

/* bytes of the values part of an [n][k] matrix: the half scales follow at this offset */
static size_t values_bytes(int bits, int n, int k) { return al64((size_t)n * (bits == 4 ? (size_t)k / 2 : (size_t)k)); }

/* values then half scales, 64-byte aligned parts; 0 for sizes that do not fit (quant.h) */
static size_t mat_bytes(int bits, int64_t n, int64_t k) {
    if (n <= 0 || k <= 0 || k % QV_Q8_BLOCK || n > INT32_MAX || k > INT32_MAX) return 0;
    if ((uint64_t)n > (SIZE_MAX / 2) / (uint64_t)k) return 0;
    return values_bytes(bits, (int)n, (int)k) + al64((size_t)n * (size_t)(k / QV_Q8_BLOCK) * sizeof(uint16_t));
}

size_t qv_q8_bytes(int64_t n, int64_t k) { return mat_bytes(8, n, k); }

void qv_q8_quantize_row(int8_t *q, float *d, const float *w, int k) { tab()->quant_f32(q, d, w, k); }

size_t qv_q4_bytes(int64_t n, int64_t k) { return mat_bytes(4, n, k); }

size_t qv_quant_bytes(qv_quant fmt, int64_t n, int64_t k) {
    return fmt == QV_QUANT_Q4 ? qv_q4_bytes(n, k) : fmt == QV_QUANT_Q8 ? qv_q8_bytes(n, k) : 0;
}

void qv_q8_dequantize_row(float *dst, const qv_q8_mat *W, int j) {
    const int nb = W->k / QV_Q8_BLOCK;
    if (W->bits == 4) ref_dequant4(dst, W->q4 + (size_t)j * (W->k / 2), W->dh + (size_t)j * nb, W->k);
    else ref_dequant(dst, W->q + (size_t)j * W->k, W->dh + (size_t)j * nb, W->k);
}

typedef struct {
    const qv_q8_table *t;
    int bits;
    void *q;          /* int8 [n][k] or 4-bit [n][k/2] */
    uint16_t *d;      /* half [n][k/32] */
    const uint16_t *W;
    int n, k;
    atomic_int bad;   /* first row + 1 with a non-finite weight */
} qw_ctx;

static void quant_task(void *ctx, int ith, int nth) {
    qw_ctx *a = ctx;
    int64_t lo, hi;
    qv_split(a->n, ith, nth, 16, &lo, &hi);
    const int nb = a->k / QV_Q8_BLOCK;
    for (int64_t j = lo; j < hi; j++) {
        const uint16_t *w = a->W + (size_t)j * a->k;
        int ok = a->bits == 4 ? quant4_bf16((uint8_t *)a->q + (size_t)j * (a->k / 2), a->d + (size_t)j * nb, w, a->k)
                              : a->t->quant_bf16((int8_t *)a->q + (size_t)j * a->k, a->d + (size_t)j * nb, w, a->k);
        if (!ok) {
            int zero = 0;
            atomic_compare_exchange_strong(&a->bad, &zero, (int)j + 1);
            return;
        }
    }
}

static qv_status quantize(qv_q8_mat *out, void *mem, const uint16_t *W, int n, int k, int bits, qv_pool *pool,
                          const char *name, qv_err *err) {
    const char *fl = bits == 4 ? "q4" : "q8";
    if (!name) name = "weight";
    if (k % QV_Q8_BLOCK)
        return qv_errf(err, QV_ERR_UNSUPPORTED, "%s: %s has rows of %d values, not a multiple of %d: "
                       "%d-bit weights are not possible for this model (run without --%s)", fl, name, k, QV_Q8_BLOCK, bits, fl);
    if (!qv_q8_bytes(n, k) || !mem || !W) return qv_errf(err, QV_ERR_INVALID, "%s: %s: bad size [%d, %d]", fl, name, n, k);
    qw_ctx a = {.t = tab(), .bits = bits, .q = mem, .d = (uint16_t *)((char *)mem + values_bytes(bits, n, k)), .W = W, .n = n, .k = k};
    atomic_init(&a.bad, 0);
    qv_pool_run(pool, quant_task, &a);
    int bad = atomic_load(&a.bad);
    if (bad)
        return qv_errf(err, QV_ERR_FORMAT, "%s: %s row %d holds an infinite or NaN weight, or one too large for the "
                       "format's half-precision scales", fl, name, bad - 1);
    qv_q8_bind(out, mem, bits, n, k);   /* no kept columns */
    return QV_OK;
}

void qv_q8_bind(qv_q8_mat *out, const void *mem, int bits, int n, int k) {
    size_t qb = values_bytes(bits, n, k);
    memset(out, 0, sizeof *out);
    out->bits = bits;
    if (bits == 4) out->q4 = mem;
    else out->q = mem;
    out->dh = (const uint16_t *)((const char *)mem + qb);
    out->n = n;
    out->k = k;
}

qv_status qv_q8_quantize_bf16(qv_q8_mat *out, void *mem, const uint16_t *W, int n, int k, qv_pool *pool,
                              const char *name, qv_err *err) {
    return quantize(out, mem, W, n, k, 8, pool, name, err);
}

qv_status qv_q4_quantize_bf16(qv_q8_mat *out, void *mem, const uint16_t *W, int n, int k, qv_pool *pool,
                              const char *name, qv_err *err) {
    return quantize(out, mem, W, n, k, 4, pool, name, err);
}

/* ---- exactly kept columns ---- */

int qv_q8_outlier_channels(const uint16_t *w, int D, int *cols) {
    if (!w || D < 8) return 0;
    float *a = malloc((size_t)D * sizeof *a);
    if (!a) return 0;
    for (int i = 0; i < D; i++) a[i] = fabsf(qv_bf16_to_f32(w[i]));
    int n = qv_outlier_cols(a, D, cols);   /* the activations' rule, on |w| */
    free(a);
    return n;
}

size_t qv_q8_keep_bytes(int64_t n) { return n > 0 ? al64((size_t)n * QV_OUTLIER_MAX * sizeof(float)) : 0; }

void qv_q8_keep(qv_q8_mat *W, void *mem, const uint16_t *Wbf, const int *cols, int nc) {
    float *wk = mem;
    if (nc > QV_OUTLIER_MAX) nc = QV_OUTLIER_MAX;
    for (int j = 0; Wbf && j < W->n; j++)
        for (int s = 0; s < QV_OUTLIER_MAX; s++)
            wk[(size_t)j * QV_OUTLIER_MAX + s] = s < nc ? qv_bf16_to_f32(Wbf[(size_t)j * W->k + cols[s]]) : 0.0f;
    for (int s = 0; s < nc; s++) W->keep[s] = cols[s];
    W->n_keep = nc;
    W->wk = wk;
}

/* ---- qv_linear_q8 driver ---- */

enum { MR = 4, NR = 4, PANEL_L2 = 192 << 10 };

typedef struct {
    const qv_q8_table *t;
    float *Y;
    int ldy;
    const float *X;
    int8_t *xq;          /* [m][k] */
    float *xd;           /* [m][k/32] */
    int8_t *xp;          /* decode with 4-bit weights (t->gemv4): xq in its order, and the offsets [k/4] */
    int32_t *xo;
    const qv_q8_mat *W;
    const uint16_t *b;
    int m, n, k;
    int chunk;           /* output columns per work item */
    int panel;           /* W rows whose blocks stay in L2 while every row of X passes */
    int n_out;           /* outlier columns of X taken out of the 8-bit product (kernels_isa.h) */
    int out_col[QV_OUTLIER_MAX];
    const float *xs;     /* [m][QV_OUTLIER_MAX] their values */
    atomic_int next;
} q8_ctx;

/* W[j][c] as the products use it: d * q (8 bits) or d * (nibble - 8) (4 bits) */
static float wval(const qv_q8_mat *W, int64_t j, int c) {
    const int nb = W->k / QV_Q8_BLOCK, b = c / QV_Q8_BLOCK, t = c % QV_Q8_BLOCK;
    if (W->bits != 4) return qv_f16_to_f32(W->dh[(size_t)j * nb + b]) * (float)W->q[(size_t)j * W->k + c];
    uint8_t byte = W->q4[(size_t)j * (W->k / 2) + b * 16 + t % 16];
    return qv_f16_to_f32(W->dh[(size_t)j * nb + b]) * (float)((t < 16 ? byte & 15 : byte >> 4) - 8);
}

/* Y[:, lo..hi) += the outlier columns' products in f32 (weights kept exactly where W keeps that column,
 * else dequantized: d * q), per element one sum in column order added last, as qv_linear's outlier_fix */
static void outlier_fix(const q8_ctx *a, int64_t lo, int64_t hi) {
    enum { JB = 64 };
    float w[JB][QV_OUTLIER_MAX];
    const int no = a->n_out;
    int kept[QV_OUTLIER_MAX];   /* index into W->keep, or -1 */
    for (int s = 0; s < no; s++) {
        kept[s] = -1;
        for (int t = 0; t < a->W->n_keep; t++)
            if (a->W->keep[t] == a->out_col[s]) kept[s] = t;
    }
    for (int64_t j0 = lo; j0 < hi; j0 += JB) {
        int nj = hi - j0 < JB ? (int)(hi - j0) : JB;
        for (int j = 0; j < nj; j++)
            for (int s = 0; s < no; s++) {
                int c = a->out_col[s];
                w[j][s] = kept[s] >= 0 ? a->W->wk[(size_t)(j0 + j) * QV_OUTLIER_MAX + kept[s]] : wval(a->W, j0 + j, c);
            }
        qv_outlier_add(a->Y + j0, a->ldy, a->m, a->xs, w, nj, no);
    }
}

static void xquant_task(void *ctx, int ith, int nth) {
    q8_ctx *a = ctx;
    int64_t lo, hi;
    qv_split(a->m, ith, nth, 1, &lo, &hi);
    const int nb = a->k / QV_Q8_BLOCK;
    for (int64_t i = lo; i < hi; i++) {
        a->t->quant_f32(a->xq + (size_t)i * a->k, a->xd + (size_t)i * nb, a->X + (size_t)i * a->k, a->k);
    }
}

static void range(q8_ctx *a, int64_t lo, int64_t hi) {
    const int k = a->k, nb = k / QV_Q8_BLOCK;
    float bias[NR];
    if (a->xp) {   /* decode, 4-bit weights: one stream of rows */
        enum { BR = 64 };
        float bb[BR];
        for (int64_t j = lo; j < hi; j += BR) {
            int nj = hi - j < BR ? (int)(hi - j) : BR;
            if (a->b)
                for (int q = 0; q < nj; q++) bb[q] = qv_bf16_to_f32(a->b[j + q]);
            a->t->gemv4(a->Y + j, a->xp, a->xo, a->xd, a->W->q4 + (size_t)j * (k / 2), a->W->dh + (size_t)j * nb, nj, k,
                        a->b ? bb : NULL);
            if (a->n_out) outlier_fix(a, j, j + nj);   /* while the rows are in cache */
        }
        return;
    }
    for (int64_t p0 = lo; p0 < hi; p0 += a->panel) {
        int64_t p1 = p0 + a->panel < hi ? p0 + a->panel : hi;
        for (int i0 = 0; i0 < a->m; i0 += MR) {
            int mi = a->m - i0 < MR ? a->m - i0 : MR;
            for (int64_t j = p0; j < p1; j += NR) {
                int nj = p1 - j < NR ? (int)(p1 - j) : NR;
                const float *bp = NULL;
                if (a->b) {
                    for (int q = 0; q < nj; q++) bias[q] = qv_bf16_to_f32(a->b[j + q]);
                    bp = bias;
                }
                if (a->W->bits == 4)
                    a->t->tile4(a->Y + (size_t)i0 * a->ldy + j, a->ldy, a->xq + (size_t)i0 * k, a->xd + (size_t)i0 * nb, mi,
                                a->W->q4 + (size_t)j * (k / 2), a->W->dh + (size_t)j * nb, nj, k, bp);
                else
                    a->t->tile(a->Y + (size_t)i0 * a->ldy + j, a->ldy, a->xq + (size_t)i0 * k, a->xd + (size_t)i0 * nb, mi,
                               a->W->q + (size_t)j * k, a->W->dh + (size_t)j * nb, nj, k, bp);
            }
        }
        /* the outlier columns' products while the panel is in L2: after the whole range its rows had left
         * the cache, and reading one weight per row and column from memory again cost decode ~8 % */
        if (a->n_out) outlier_fix(a, p0, p1);
    }
}

static void run_task(void *ctx, int ith, int nth) {
    (void)ith; (void)nth;
    q8_ctx *a = ctx;
    for (;;) {
        int64_t lo = (int64_t)atomic_fetch_add(&a->next, 1) * a->chunk;
        if (lo >= a->n) return;
        int64_t hi = lo + a->chunk < a->n ? lo + a->chunk : a->n;
        range(a, lo, hi);   /* with the outlier columns' products (outlier_fix) */
    }
}

/* the 16-bit GEMM's view of W (kernels_isa.h qv_wsrc): rows dequantized by the table's dequant (d * q) */
static void rows_f32(const qv_wsrc *w, float *dst, int ldd, int64_t r0, int rows, int k0, int kc) {
    const qv_q8_mat *W = w->ctx;
    const qv_q8_table *t = tab();
    const int nb = W->k / QV_Q8_BLOCK;
    for (int r = 0; r < rows; r++)
        if (W->bits == 4)
            t->dequant4(dst + (size_t)r * ldd, W->q4 + (size_t)(r0 + r) * (W->k / 2) + k0 / 2, W->dh + (size_t)(r0 + r) * nb + k0 / QV_Q8_BLOCK, kc);
        else
            t->dequant(dst + (size_t)r * ldd, W->q + (size_t)(r0 + r) * W->k + k0, W->dh + (size_t)(r0 + r) * nb + k0 / QV_Q8_BLOCK, kc);
}

static void fix_task(void *ctx, int ith, int nth) {
    q8_ctx *a = ctx;
    int64_t lo, hi;
    qv_split(a->n, ith, nth, 16, &lo, &hi);
    if (hi > lo) outlier_fix(a, lo, hi);
}

void qv_linear_q8(qv_pool *pool, float *Y, int ldy, const float *X, const qv_q8_mat *W, const uint16_t *b,
                  int m, int n, int k) {
    if (m <= 0 || n <= 0) return;
    const qv_q8_table *t = tab();
    const int nb = k / QV_Q8_BLOCK;
    q8_ctx a = {.Y = Y, .ldy = ldy, .W = W, .b = b, .m = m, .n = n, .k = k};
    /* outlier columns (kernels.h): out of the int8 blocks (one would flatten its block's 31 other values),
     * added back in f32 after the product */
    const float *xz = NULL;
    a.n_out = qv_outlier_split(pool, X, m, k, a.out_col, &xz, &a.xs);
    if (a.n_out) X = xz;
    a.X = X;
    if (m >= QV_Q8_I16_M) {   /* prefill: 16-bit activations against the 8-bit weights (kernels_isa.h) */
        const qv_wsrc ws = {.rows_f32 = rows_f32, .ctx = W};
        if (qv_gemm_i16_wsrc(pool, Y, ldy, X, &ws, b, m, n, k)) {
            if (a.n_out) qv_pool_run(pool, fix_task, &a);
            return;
        }
    }
    size_t qbytes = al64((size_t)m * (size_t)k), dbytes = al64((size_t)m * nb * sizeof(float));
    const int gv = m == 1 && W->bits == 4 && t->gemv4;
    void *s = qv_kernel_scratch(0, qbytes + dbytes + (gv ? 2 * al64((size_t)k) : 0));
    a.t = s ? t : &qv_q8_scalar;
    int8_t one_q[QV_Q8_BLOCK];
    float one_d;
    if (!s) {   /* no memory for the scratch: scalar, one row and block at a time (slow but right) */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                float acc = 0.0f;
                for (int bk = 0; bk < nb; bk++) {
                    ref_quant_f32(one_q, &one_d, X + (size_t)i * k + bk * QV_Q8_BLOCK, QV_Q8_BLOCK);
                    acc += W->bits == 4 ? qv_q8_dot_ref(one_q, &one_d, W->q4 + (size_t)j * (k / 2) + bk * 16,
                                                        W->dh + (size_t)j * nb + bk, QV_Q8_BLOCK, 1)
                                        : qv_q8_dot_ref(one_q, &one_d, W->q + (size_t)j * k + bk * QV_Q8_BLOCK,
                                                        W->dh + (size_t)j * nb + bk, QV_Q8_BLOCK, 0);
                }
                Y[(size_t)i * ldy + j] = (b ? qv_bf16_to_f32(b[j]) : 0.0f) + acc;
            }
        if (a.n_out) outlier_fix(&a, 0, n);
        return;
    }
    a.xq = s;
    a.xd = (float *)((char *)s + qbytes);
    int nth = qv_pool_size(pool);
    if ((size_t)m * k >= ((size_t)1 << 16)) qv_pool_run(pool, xquant_task, &a);
    else xquant_task(&a, 0, 1);
    if (gv) {
        a.xp = (int8_t *)((char *)s + qbytes + dbytes);
        a.xo = (int32_t *)((char *)a.xp + al64((size_t)k));
        qv_q4_prep(a.xp, a.xo, a.xq, k, t->gemv4_pairs);
    }
    int c = (n + 8 * nth - 1) / (8 * nth);
    c = (c + 15) / 16 * 16;
    a.chunk = c < 16 ? 16 : c;
    int pr = (int)(PANEL_L2 / (W->bits == 4 ? (size_t)k / 2 + (size_t)nb * 2 : (size_t)k + (size_t)nb * 4));
    pr = pr / NR * NR;
    a.panel = pr < NR ? NR : pr;
    atomic_init(&a.next, 0);
    qv_pool_run(pool, run_task, &a);
}
