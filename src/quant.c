/* quant.c — 8-bit weights (quant.h): the format, the scalar reference kernels (the spec quant_avx2.c is
 * tested against) and the qv_linear_q8 driver (threads over output columns from an atomic counter, L2-sized
 * panels of weight rows). Which kernels run is the kernel table's choice (qv_ktable.q8) and the scratch is
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

static void ref_quant_f32(int8_t *q, float *d, const float *x, int k) {
    for (int b = 0; b < k / QV_Q8_BLOCK; b++) {
        const float *xb = x + b * QV_Q8_BLOCK;
        float amax = 0.0f;
        for (int t = 0; t < QV_Q8_BLOCK; t++) {
            float a = fabsf(xb[t]);
            amax = a > amax ? a : amax;
        }
        float s = amax / 127.0f, id = s != 0.0f ? 1.0f / s : 0.0f;
        d[b] = s;
        for (int t = 0; t < QV_Q8_BLOCK; t++) q[b * QV_Q8_BLOCK + t] = q_of(xb[t] * id);
    }
}

static int ref_quant_bf16(int8_t *q, float *d, const uint16_t *w, int k) {
    float buf[QV_Q8_BLOCK];
    for (int b = 0; b < k / QV_Q8_BLOCK; b++) {
        for (int t = 0; t < QV_Q8_BLOCK; t++) {
            uint16_t h = w[b * QV_Q8_BLOCK + t];
            if ((h & 0x7f80) == 0x7f80) return 0;   /* inf or NaN */
            buf[t] = qv_bf16_to_f32(h);
        }
        ref_quant_f32(q + b * QV_Q8_BLOCK, d + b, buf, QV_Q8_BLOCK);
    }
    return 1;
}

static float ref_dot(const int8_t *xq, const float *xd, const int8_t *wq, const float *wd, int k) {
    float acc = 0.0f;
    for (int b = 0; b < k / QV_Q8_BLOCK; b++) {
        int32_t s = 0;
        for (int t = 0; t < QV_Q8_BLOCK; t++) s += (int32_t)xq[b * QV_Q8_BLOCK + t] * wq[b * QV_Q8_BLOCK + t];
        acc += (xd[b] * wd[b]) * (float)s;
    }
    return acc;
}

static void ref_tile(float *Y, int ldy, const int8_t *xq, const float *xd, int mr, const int8_t *wq,
                     const float *wd, int nr, int k, const float *bias) {
    const int nb = k / QV_Q8_BLOCK;
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float s = ref_dot(xq + (size_t)i * k, xd + (size_t)i * nb, wq + (size_t)j * k, wd + (size_t)j * nb, k);
            Y[(size_t)i * ldy + j] = (bias ? bias[j] : 0.0f) + s;
        }
}

static void ref_dequant(float *dst, const int8_t *q, const float *d, int k) {
    for (int t = 0; t < k; t++) dst[t] = d[t / QV_Q8_BLOCK] * (float)q[t];
}

const qv_q8_table qv_q8_scalar = {"scalar", ref_quant_bf16, ref_quant_f32, ref_tile, ref_dequant, NULL, 0};

/* ---- choice of implementation ---- */

static _Atomic(const qv_q8_table *) g_forced;   /* qv_q8_force (tests) */

static const qv_q8_table *avx2_if_built(void) {
#if defined(__x86_64__) || defined(__i386__)
    return qv_q8_table_avx2();
#else
    return NULL;
#endif
}

static const qv_q8_table *tab(void) {
    const qv_q8_table *t = atomic_load_explicit(&g_forced, memory_order_relaxed);
    if (t) return t;
    t = qv_kernels_table()->q8;            /* the kernel table has checked the CPU */
    if (!t) t = avx2_if_built();
    return t ? t : &qv_q8_scalar;
}

const char *qv_q8_kernels_name(void) { return tab()->name; }

int qv_q8_force(const char *name) {
    const qv_q8_table *t = !name ? NULL : !strcmp(name, "scalar") ? &qv_q8_scalar : NULL;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (name && !strcmp(name, "avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        t = avx2_if_built();
#endif
    if (!t) return 0;
    atomic_store(&g_forced, t);
    return 1;
}

/* ---- format ---- */

static size_t al64(size_t x) { return (x + 63) & ~(size_t)63; }

size_t qv_q8_bytes(int64_t n, int64_t k) {
    if (n <= 0 || k <= 0 || k % QV_Q8_BLOCK || n > INT32_MAX || k > INT32_MAX) return 0;
    if ((uint64_t)n > (SIZE_MAX / 2) / (uint64_t)k) return 0;
    return al64((size_t)n * (size_t)k) + al64((size_t)n * (size_t)(k / QV_Q8_BLOCK) * sizeof(float));
}

void qv_q8_quantize_row(int8_t *q, float *d, const float *w, int k) { tab()->quant_f32(q, d, w, k); }

void qv_q8_dequantize_row(float *dst, const qv_q8_mat *W, int j) {
    const int8_t *q = W->q + (size_t)j * W->k;
    ref_dequant(dst, q, W->d + (size_t)j * (W->k / QV_Q8_BLOCK), W->k);
}

typedef struct {
    const qv_q8_table *t;
    int8_t *q;
    float *d;
    const uint16_t *W;
    int n, k;
    atomic_int bad;   /* first row + 1 with a non-finite weight */
} qw_ctx;

static void quant_task(void *ctx, int ith, int nth) {
    qw_ctx *a = ctx;
    int64_t lo, hi;
    qv_split(a->n, ith, nth, 16, &lo, &hi);
    const int nb = a->k / QV_Q8_BLOCK;
    for (int64_t j = lo; j < hi; j++)
        if (!a->t->quant_bf16(a->q + (size_t)j * a->k, a->d + (size_t)j * nb, a->W + (size_t)j * a->k, a->k)) {
            int zero = 0;
            atomic_compare_exchange_strong(&a->bad, &zero, (int)j + 1);
            return;
        }
}

qv_status qv_q8_quantize_bf16(qv_q8_mat *out, void *mem, const uint16_t *W, int n, int k, qv_pool *pool,
                              const char *name, qv_err *err) {
    if (!name) name = "weight";
    if (k % QV_Q8_BLOCK)
        return qv_errf(err, QV_ERR_UNSUPPORTED, "q8: %s has rows of %d values, not a multiple of %d: "
                       "8-bit weights are not possible for this model (run without --q8)", name, k, QV_Q8_BLOCK);
    if (!qv_q8_bytes(n, k) || !mem || !W) return qv_errf(err, QV_ERR_INVALID, "q8: %s: bad size [%d, %d]", name, n, k);
    qw_ctx a = {.t = tab(), .q = mem, .d = (float *)((char *)mem + al64((size_t)n * k)), .W = W, .n = n, .k = k};
    atomic_init(&a.bad, 0);
    qv_pool_run(pool, quant_task, &a);
    int bad = atomic_load(&a.bad);
    if (bad) return qv_errf(err, QV_ERR_FORMAT, "q8: %s row %d holds an infinite or NaN weight", name, bad - 1);
    memset(out, 0, sizeof *out);   /* no kept columns */
    out->q = a.q;
    out->d = a.d;
    out->n = n;
    out->k = k;
    return QV_OK;
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
    for (int j = 0; j < W->n; j++)
        for (int s = 0; s < QV_OUTLIER_MAX; s++)
            wk[(size_t)j * QV_OUTLIER_MAX + s] = s < nc ? qv_bf16_to_f32(Wbf[(size_t)j * W->k + cols[s]]) : 0.0f;
    for (int s = 0; s < nc; s++) W->keep[s] = cols[s];
    W->n_keep = nc;
    W->wk = wk;
}

/* ---- qv_linear_q8 driver ---- */

enum { MR = 4, NR = 4, PANEL_L2 = 192 << 10, BLAS_M = 64, PANEL_BYTES = 8 << 20 };

typedef struct {
    const qv_q8_table *t;
    float *Y;
    int ldy;
    const float *X;
    int8_t *xq;          /* [m][k] */
    float *xd;           /* [m][k/32] */
    float *xf;           /* [m][k] dequantized X (sgemm path), else NULL */
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

/* Y[:, lo..hi) += the outlier columns' products in f32 (weights kept exactly where W keeps that column,
 * else dequantized: d * q), per element one sum in column order added last, as qv_linear's outlier_fix */
static void outlier_fix(const q8_ctx *a, int64_t lo, int64_t hi) {
    enum { JB = 64 };
    float w[JB][QV_OUTLIER_MAX];
    const int k = a->k, nb = k / QV_Q8_BLOCK, no = a->n_out;
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
                w[j][s] = kept[s] >= 0 ? a->W->wk[(size_t)(j0 + j) * QV_OUTLIER_MAX + kept[s]]
                                       : a->W->d[(size_t)(j0 + j) * nb + c / QV_Q8_BLOCK] * (float)a->W->q[(size_t)(j0 + j) * k + c];
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
        if (a->xf) a->t->dequant(a->xf + (size_t)i * a->k, a->xq + (size_t)i * a->k, a->xd + (size_t)i * nb, a->k);
    }
}

/* columns [lo, hi) on the sgemm path: panels of W rows dequantized to f32, OpenBLAS on this thread */
static int range_blas(q8_ctx *a, int64_t lo, int64_t hi) {
    const int k = a->k, nb = k / QV_Q8_BLOCK;
    if (a->t->gemm) {
        void *s = qv_kernel_scratch(1, a->t->gemm_scratch);
        if (!s) return 0;
        a->t->gemm(a->Y + lo, a->ldy, a->xf, a->m, a->W->q + (size_t)lo * k, a->W->d + (size_t)lo * nb, (int)(hi - lo), k, s);
        if (a->b)
            for (int i = 0; i < a->m; i++)
                for (int64_t j = lo; j < hi; j++) a->Y[(size_t)i * a->ldy + j] += qv_bf16_to_f32(a->b[j]);
        return 1;
    }
    int64_t pr = PANEL_BYTES / ((int64_t)k * 4);
    pr = pr < 16 ? 16 : pr / 16 * 16;
    if (pr > hi - lo) pr = hi - lo;
    float *wf = qv_kernel_scratch(1, (size_t)pr * k * sizeof(float));
    if (!wf) return 0;
    for (int64_t j0 = lo; j0 < hi; j0 += pr) {
        int nj = (int)(hi - j0 < pr ? hi - j0 : pr);
        for (int j = 0; j < nj; j++)
            a->t->dequant(wf + (size_t)j * k, a->W->q + (size_t)(j0 + j) * k, a->W->d + (size_t)(j0 + j) * nb, k);
        qv_sgemm(0, 1, a->m, nj, k, 1.0f, a->xf, k, wf, k, 0.0f, a->Y + j0, a->ldy);
        if (a->b)
            for (int i = 0; i < a->m; i++)
                for (int j = 0; j < nj; j++) a->Y[(size_t)i * a->ldy + j0 + j] += qv_bf16_to_f32(a->b[j0 + j]);
    }
    return 1;
}

static void range(q8_ctx *a, int64_t lo, int64_t hi) {
    const int k = a->k, nb = k / QV_Q8_BLOCK;
    float bias[NR];
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
                a->t->tile(a->Y + (size_t)i0 * a->ldy + j, a->ldy, a->xq + (size_t)i0 * k, a->xd + (size_t)i0 * nb, mi,
                           a->W->q + (size_t)j * k, a->W->d + (size_t)j * nb, nj, k, bp);
            }
        }
    }
}

static void run_task(void *ctx, int ith, int nth) {
    (void)ith; (void)nth;
    q8_ctx *a = ctx;
    for (;;) {
        int64_t lo = (int64_t)atomic_fetch_add(&a->next, 1) * a->chunk;
        if (lo >= a->n) return;
        int64_t hi = lo + a->chunk < a->n ? lo + a->chunk : a->n;
        if (!a->xf || !range_blas(a, lo, hi)) range(a, lo, hi);
        if (a->n_out) outlier_fix(a, lo, hi);
    }
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
    size_t qbytes = al64((size_t)m * (size_t)k), dbytes = al64((size_t)m * nb * sizeof(float));
    const int blas = t != &qv_q8_scalar && m >= BLAS_M;
    void *s = qv_kernel_scratch(0, qbytes + dbytes + (blas ? (size_t)m * k * sizeof(float) : 0));
    a.t = s ? t : &qv_q8_scalar;
    int8_t one_q[QV_Q8_BLOCK];
    float one_d;
    if (!s) {   /* no memory for the scratch: scalar, one row and block at a time (slow but right) */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                float acc = 0.0f;
                for (int bk = 0; bk < nb; bk++) {
                    ref_quant_f32(one_q, &one_d, X + (size_t)i * k + bk * QV_Q8_BLOCK, QV_Q8_BLOCK);
                    acc += ref_dot(one_q, &one_d, W->q + (size_t)j * k + bk * QV_Q8_BLOCK,
                                   W->d + (size_t)j * nb + bk, QV_Q8_BLOCK);
                }
                Y[(size_t)i * ldy + j] = (b ? qv_bf16_to_f32(b[j]) : 0.0f) + acc;
            }
        if (a.n_out) outlier_fix(&a, 0, n);
        return;
    }
    a.xq = s;
    a.xd = (float *)((char *)s + qbytes);
    a.xf = blas ? (float *)((char *)s + qbytes + dbytes) : NULL;
    int nth = qv_pool_size(pool);
    if ((size_t)m * k >= ((size_t)1 << 16)) qv_pool_run(pool, xquant_task, &a);
    else xquant_task(&a, 0, 1);
    int c = (n + 8 * nth - 1) / (8 * nth);
    c = (c + 15) / 16 * 16;
    a.chunk = c < 16 ? 16 : c;
    int pr = (int)(PANEL_L2 / ((size_t)k + (size_t)nb * 4));
    pr = pr / NR * NR;
    a.panel = pr < NR ? NR : pr;
    atomic_init(&a.next, 0);
    qv_pool_run(pool, run_task, &a);
}
