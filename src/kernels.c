/* kernels.c — the scalar reference of every kernel (the spec each SIMD version is tested against), the
 * choice of implementation at start (function table, see kernels_isa.h), and the qv_linear driver:
 * threading over the output columns, cache blocking, and the per-thread scratch that holds X prepared
 * for the micro-kernel (grown once, kept for the thread's life; never a malloc per call once warm).
 *
 * Numerics (kernels.h): REF = f32 products and sums over exactly widened bf16 weights; FAST = X rounded
 * to bf16 (round to nearest even), bf16 x bf16 products (exact in f32) summed in f32. */
#include "kernels.h"
#include "kernels_isa.h"
#include "quant.h"
#include "tensor.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- scalar reference ---- */

static float ref_dot_f32_bf16(const float *x, const uint16_t *y, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += x[i] * qv_bf16_to_f32(y[i]);
    return s;
}

static void ref_axpy_bf16(float *y, float a, const uint16_t *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * qv_bf16_to_f32(x[i]);
}

static float ref_dot_f32(const float *x, const float *y, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

static void ref_bf16_to_f32(float *dst, const uint16_t *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = qv_bf16_to_f32(src[i]);
}

static void ref_f16_to_f32(float *dst, const uint16_t *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = qv_f16_to_f32(src[i]);
}

static void ref_attn_qk(float *S, int lds, const float *Q, int ldq, int R, const float *K, int ldk, int n, int hd) {
    for (int j = 0; j < n; j++)
        for (int r = 0; r < R; r++) S[(size_t)r * lds + j] = ref_dot_f32(Q + (size_t)r * ldq, K + (size_t)j * ldk, hd);
}

static void ref_attn_pv_f16(float *O, int ldo, const float *P, int ldp, int R, const uint16_t *V, int ldv, int hd,
                            int n) {
    for (int d = 0; d < hd; d++)
        for (int r = 0; r < R; r++) {
            float s = 0.0f;
            for (int j = 0; j < n; j++) s += P[(size_t)r * ldp + j] * qv_f16_to_f32(V[(size_t)d * ldv + j]);
            O[(size_t)r * ldo + d] += s;
        }
}

static void ref_f32_to_bf16(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = qv_f32_to_bf16(src[i]);
}

/* prepared X for the scalar tile: plain f32 rows (FAST: values rounded to bf16 precision) */
static void ref_xprep_ref(void *dst, const float *X, int m, int k, int ldx, int kp) {
    float *d = dst;
    for (int i = 0; i < m; i++) memcpy(d + (size_t)i * kp, X + (size_t)i * ldx, (size_t)k * sizeof(float));
}

static void ref_xprep_fast(void *dst, const float *X, int m, int k, int ldx, int kp) {
    float *d = dst;
    for (int i = 0; i < m; i++)
        for (int t = 0; t < k; t++) d[(size_t)i * kp + t] = qv_bf16_to_f32(qv_f32_to_bf16(X[(size_t)i * ldx + t]));
}

static void ref_round_bf16(float *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = qv_bf16_to_f32(qv_f32_to_bf16(src[i]));
}

static void ref_tile(float *Y, int ldy, const void *xv, size_t ldx, const uint16_t *W, size_t ldw, int kk,
                     int mr, int nr, const float *bias, int acc) {
    const float *x = xv;
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float s = ref_dot_f32_bf16(x + (size_t)i * ldx, W + (size_t)j * ldw, kk);
            float *y = Y + (size_t)i * ldy + j;
            float base = acc ? *y : 0.0f;
            if (bias) base += bias[j];
            *y = base + s;
        }
}

static void ref_gemm_i16(float *Y, int ldy, const int16_t *Xq, int ldq, const float *sx, int nkb, const qv_wsrc *W,
                         const uint16_t *bias, int m, int n, int k, void *scratch) {
    (void)scratch;
    qv_i16_gemm_ref(Y, ldy, Xq, ldq, sx, nkb, W, bias, m, n, k);
}

/* FAST from m = 16 takes the 16-bit integer definition here too, so every table computes the same numbers
 * for the large products (the SIMD tables bit for bit) */
static const qv_q8_table *q8_scalar(void) { return &qv_q8_scalar; }

static const qv_ktable k_scalar = {
    .name = "scalar",
    .kblock = 1,
    .kc = 512,
    .mr = 4,
    .nr = 4,
    .xbf16 = {0, 0},
    .xprep = {ref_xprep_ref, ref_xprep_fast},
    .tile = {ref_tile, ref_tile},
    .xquant_i16 = qv_i16_quant_x_ref,
    .gemm_i16 = ref_gemm_i16,
    .gemm_i16_scratch = 64,
    .blas_min_m = {0, 16},
    .round_bf16 = ref_round_bf16,
    .dot_f32_bf16 = ref_dot_f32_bf16,
    .axpy_bf16 = ref_axpy_bf16,
    .dot_f32 = ref_dot_f32,
    .bf16_to_f32 = ref_bf16_to_f32,
    .f32_to_bf16 = ref_f32_to_bf16,
    .f16_to_f32 = ref_f16_to_f32,
    .attn_qk = ref_attn_qk,
    .attn_pv_f16 = ref_attn_pv_f16,
    .elt = &qv_elt_ref,
    .q8 = q8_scalar,
};

/* ---- choice of implementation ---- */

static const qv_ktable *g_table;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static const qv_ktable *isa_table(const char *name) {
    if (!strcmp(name, "scalar")) return &k_scalar;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!strcmp(name, "avx2")) {
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return qv_ktable_avx2();
        return NULL;
    }
    if (!strcmp(name, "avx512") || !strcmp(name, "avx512bf16")) {
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni"))
            return qv_ktable_avx512();
        return NULL;
    }
#endif
    return NULL;
}

static void pick_table(void) {
    const char *env = getenv("QV_KERNELS");
    const qv_ktable *t = env && *env ? isa_table(env) : NULL;
    if (!t) t = isa_table("avx512");
    if (!t) t = isa_table("avx2");
    if (!t) t = &k_scalar;
    g_table = t;
}

static const qv_ktable *table(void) {
    pthread_once(&g_once, pick_table);
    return g_table;
}

const char *qv_kernels_name(void) { return table()->name; }
const qv_ktable *qv_kernels_table(void) { return table(); }

int qv_kernels_force(const char *name) {
    table();
    const qv_ktable *t = name ? isa_table(name) : NULL;
    if (!t) return 0;
    g_table = t;
    return 1;
}

void qv_kernels_set_table(const qv_ktable *t) {
    table();
    if (t) g_table = t;
}

float qv_dot_f32_bf16(const float *x, const uint16_t *y, int n) { return table()->dot_f32_bf16(x, y, n); }
void qv_axpy_bf16(float *y, float a, const uint16_t *x, int n) { table()->axpy_bf16(y, a, x, n); }
float qv_dot_f32(const float *x, const float *y, int n) { return table()->dot_f32(x, y, n); }
void qv_attn_qk(float *S, int lds, const float *Q, int ldq, int R, const float *K, int ldk, int n, int hd) {
    table()->attn_qk(S, lds, Q, ldq, R, K, ldk, n, hd);
}
void qv_attn_pv_f16(float *O, int ldo, const float *P, int ldp, int R, const uint16_t *V, int ldv, int hd, int n) {
    table()->attn_pv_f16(O, ldo, P, ldp, R, V, ldv, hd, n);
}
void qv_bf16_to_f32_row(float *dst, const uint16_t *src, int n) { table()->bf16_to_f32(dst, src, n); }
void qv_f32_to_bf16_row(uint16_t *dst, const float *src, int n) { table()->f32_to_bf16(dst, src, n); }
void qv_f16_to_f32_row(float *dst, const uint16_t *src, int n) { table()->f16_to_f32(dst, src, n); }

static const qv_elt_table *elt(void) {
    const qv_ktable *t = table();
    return t->elt ? t->elt : &qv_elt_v4;
}
void qv_rmsnorm_bf16(float *y, const float *x, const uint16_t *w, int m, int D, float eps) {
    elt()->rmsnorm_bf16(y, x, w, m, D, eps);
}
void qv_layernorm(float *y, const float *x, const float *w, const float *b, int64_t m, int n, double eps) {
    elt()->layernorm(y, x, w, b, m, n, eps);
}
float qv_softmax_row(float *s, int n) { return elt()->softmax(s, n); }
float qv_row_max(const float *s, int n, float m) { return elt()->row_max(s, n, m); }
float qv_exp_sub_sum(float *s, int n, float m) { return elt()->exp_sub_sum(s, n, m); }
void qv_silu_mul(float *g, const float *u, int64_t n) { elt()->silu_mul(g, u, n); }
void qv_quick_gelu(float *y, int n) { elt()->quick_gelu(y, n); }
void qv_gelu_erf(float *y, int n) { elt()->gelu_erf(y, n); }
void qv_rope_half(float *x, int n_heads, int hd, const float *cs, const float *sn) {
    elt()->rope_half(x, n_heads, hd, cs, sn);
}
void qv_add_row(float *y, const float *x, int n) { elt()->add(y, x, n); }

/* ---- per-thread scratch: grown on demand, freed when the thread exits ---- */

enum { N_SLOTS = 4 };   /* 0: prepared X (caller thread), 1: widened W panel (every thread), 2: column maxima
                           of the outlier scan, 3: X without its outlier columns (both caller thread) */
static pthread_key_t g_scratch_key[N_SLOTS];
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local struct { void *p; size_t n; } t_scratch[N_SLOTS];

static void scratch_free(void *p) { free(p); }
static void scratch_key_init(void) {
    for (int i = 0; i < N_SLOTS; i++) pthread_key_create(&g_scratch_key[i], scratch_free);
}

void *qv_kernel_scratch(int slot, size_t bytes) {
    if (t_scratch[slot].n >= bytes) return t_scratch[slot].p;
    pthread_once(&g_scratch_once, scratch_key_init);
    size_t n = bytes + bytes / 4 + 4096;
    void *p = NULL;
    if (posix_memalign(&p, 64, n) != 0) return NULL;
    free(t_scratch[slot].p);
    t_scratch[slot].p = p;
    t_scratch[slot].n = n;
    pthread_setspecific(g_scratch_key[slot], p);
    return p;
}

/* ---- the 16-bit integer FAST GEMM, scalar definition (kernels_isa.h) ---- */

/* rows of X to +-qmax per 128-wide block: X's (QV_I16_QX) and, in the GEMM, W's (QV_I16_QW) */
static int quant_rows_ref(int16_t *q, int ldq, float *sx, int nkb, const float *X, int ldx, int m, int k, float qmax) {
    int bad = 0;
    for (int i = 0; i < m; i++) {
        const float *x = X + (size_t)i * ldx;
        for (int b = 0; b < nkb; b++) {
            int k0 = b * QV_I16_KB, n = k - k0 < QV_I16_KB ? k - k0 : QV_I16_KB;
            uint32_t mb = 0;
            for (int t = 0; t < n; t++) {
                uint32_t u;
                memcpy(&u, x + k0 + t, 4);
                u &= 0x7fffffffu;
                if (u > mb) mb = u;
            }
            float inv, s = qv_i16_scale(mb, qmax, &inv);
            bad |= s != s;
            sx[(size_t)i * nkb + b] = s;
            for (int t = 0; t < n; t++) q[(size_t)i * ldq + k0 + t] = qv_i16_round(x[k0 + t], inv);
        }
        for (int t = k; t < ldq; t++) q[(size_t)i * ldq + t] = 0;
    }
    return bad ? -1 : 0;
}

int qv_i16_quant_x_ref(int16_t *q, int ldq, float *sx, int nkb, const float *X, int ldx, int m, int k) {
    return quant_rows_ref(q, ldq, sx, nkb, X, ldx, m, k, (float)QV_I16_QX);
}

void qv_i16_gemm_ref(float *Y, int ldy, const int16_t *Xq, int ldq, const float *sx, int nkb, const qv_wsrc *W,
                     const uint16_t *bias, int m, int n, int k) {
    int16_t wq[QV_I16_KB];
    float wf[QV_I16_KB];
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < m; i++) Y[(size_t)i * ldy + j] = bias ? qv_bf16_to_f32(bias[j]) : 0.0f;
        for (int b = 0; b < nkb; b++) {
            int k0 = b * QV_I16_KB, kc = k - k0 < QV_I16_KB ? k - k0 : QV_I16_KB;
            float sw;
            qv_wsrc_row(wf, W, j, k0, kc);
            (void)quant_rows_ref(wq, kc, &sw, 1, wf, kc, 1, kc, (float)QV_I16_QW);   /* a NaN: sw NaN, as defined */
            for (int i = 0; i < m; i++) {
                const int16_t *x = Xq + (size_t)i * ldq + k0;
                int32_t c = 0;
                for (int t = 0; t < kc; t++) c += (int32_t)x[t] * wq[t];
                float *y = Y + (size_t)i * ldy + j;
                *y = fmaf((float)c, sx[(size_t)i * nkb + b] * sw, *y);
            }
        }
    }
}

/* ---- qv_linear driver ---- */

enum { NC = 96, NR_MAX = 16, PANEL_BYTES = 8 << 20 };

typedef struct {
    const qv_ktable *t;
    qv_precision prec;
    float *Y;
    int ldy;
    const float *X;      /* original input [m][k] */
    void *xp;            /* prepared X [m][kp] (tile path) or X rounded to bf16 [m][k] (BLAS path, FAST) */
    int kp;
    size_t xelt;         /* bytes per prepared element */
    const uint16_t *W, *b;
    const qv_wsrc *ws;   /* i16 with a non-bf16 W (qv_gemm_i16_wsrc), else NULL: W */
    int m, n, k;
    int chunk;           /* output columns per work item */
    int i16;             /* FAST through the ISA's 16-bit GEMM: xp = int16 X [m][kp], sx its block scales */
    float *sx;
    int nkb;
    atomic_int bad;      /* xquant found a non-finite value */
    int n_out;           /* FAST: outlier columns of X taken out of the rounded product (outlier_scan) */
    int out_col[QV_OUTLIER_MAX];   /* their k indices, increasing */
    const float *xs;     /* [m][QV_OUTLIER_MAX]: X's values in those columns (the product adds them exactly) */
    atomic_int next;     /* next work item: threads take items until none is left, so a thread the OS
                            preempts (shared machine) holds back only its current item */
} lin_ctx;

/* work items of about n / (8 nth) columns, multiples of 32 (whole GEMM panels) */
static int chunk_of(int n, int nth) {
    int c = (n + 8 * nth - 1) / (8 * nth);
    c = (c + 31) / 32 * 32;
    return c < 32 ? 32 : c;
}

static void xprep_task(void *ctx, int ith, int nth) {
    lin_ctx *a = ctx;
    int64_t lo, hi;
    qv_split(a->m, ith, nth, 1, &lo, &hi);
    if (hi > lo)
        a->t->xprep[a->prec]((char *)a->xp + (size_t)lo * a->kp * a->xelt, a->X + (size_t)lo * a->k,
                             (int)(hi - lo), a->k, a->k, a->kp);
}

static void xquant_task(void *ctx, int ith, int nth) {
    lin_ctx *a = ctx;
    int64_t lo, hi;
    qv_split(a->m, ith, nth, 1, &lo, &hi);
    if (hi > lo && a->t->xquant_i16((int16_t *)a->xp + (size_t)lo * a->kp, a->kp, a->sx + (size_t)lo * a->nkb, a->nkb,
                                    a->X + (size_t)lo * a->k, a->k, (int)(hi - lo), a->k))
        atomic_store(&a->bad, 1);
}

static void xround_task(void *ctx, int ith, int nth) {
    lin_ctx *a = ctx;
    int64_t lo, hi;
    if (a->xelt == 2) {   /* bf16 rows, padded to an even length with a zero */
        qv_split(a->m, ith, nth, 1, &lo, &hi);
        for (int64_t i = lo; i < hi; i++) {
            uint16_t *d = (uint16_t *)a->xp + (size_t)i * a->kp;
            a->t->f32_to_bf16(d, a->X + (size_t)i * a->k, a->k);
            if (a->kp > a->k) d[a->k] = 0;
        }
        return;
    }
    qv_split((int64_t)a->m * a->k, ith, nth, 64, &lo, &hi);
    if (hi > lo) a->t->round_bf16((float *)a->xp + lo, a->X + lo, (int)(hi - lo));
}

static void add_bias(float *Y, int ldy, const uint16_t *b, int m, int n) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) Y[(size_t)i * ldy + j] += qv_bf16_to_f32(b[j]);
}

/* large m, columns [lo, hi): the ISA's GEMM, or widen panels of W rows to f32 for OpenBLAS
 * (single-threaded, one call per thread) */
static void gemm_range(lin_ctx *a, int64_t lo, int64_t hi) {
    if (a->i16) {
        void *s = qv_kernel_scratch(1, a->t->gemm_i16_scratch);
        const uint16_t *b = a->b ? a->b + lo : NULL;
        qv_wsrc W = {.bf16 = a->W + (size_t)lo * a->k, .ldw = (size_t)a->k};
        if (a->ws) W = *a->ws, W.row0 += lo;
        if (s) a->t->gemm_i16(a->Y + lo, a->ldy, a->xp, a->kp, a->sx, a->nkb, &W, b, a->m, (int)(hi - lo), a->k, s);
        else qv_i16_gemm_ref(a->Y + lo, a->ldy, a->xp, a->kp, a->sx, a->nkb, &W, b, a->m, (int)(hi - lo), a->k);
        return;
    }
    if (a->t->gemm[a->prec]) {
        void *s = qv_kernel_scratch(1, a->t->gemm_scratch);
        if (s) {
            const void *X = a->prec == QV_PREC_FAST ? a->xp : (const void *)a->X;
            a->t->gemm[a->prec](a->Y + lo, a->ldy, X, a->kp, a->W + (size_t)lo * a->k, (size_t)a->k,
                                a->b ? a->b + lo : NULL, a->m, (int)(hi - lo), a->k, s);
            return;
        }
        if (a->xelt == 2) {   /* bf16 X only suits the gemm: finish with the scalar reference */
            for (int64_t j = lo; j < hi; j++)
                for (int i = 0; i < a->m; i++) {
                    const uint16_t *x = (const uint16_t *)a->xp + (size_t)i * a->kp, *w = a->W + (size_t)j * a->k;
                    float s2 = a->b ? qv_bf16_to_f32(a->b[j]) : 0.0f;
                    for (int q = 0; q < a->k; q++) s2 += qv_bf16_to_f32(x[q]) * qv_bf16_to_f32(w[q]);
                    a->Y[(size_t)i * a->ldy + j] = s2;
                }
            return;
        }
    }
    const float *X = a->prec == QV_PREC_FAST ? (const float *)a->xp : a->X;
    int64_t nb = PANEL_BYTES / ((int64_t)a->k * 4);
    nb = nb < 16 ? 16 : nb / 16 * 16;
    if (nb > hi - lo) nb = hi - lo;
    float *wf = qv_kernel_scratch(1, (size_t)nb * a->k * sizeof(float));
    for (int64_t j0 = lo; j0 < hi; j0 += nb) {
        int nj = (int)(hi - j0 < nb ? hi - j0 : nb);
        const uint16_t *W = a->W + (size_t)j0 * a->k;
        if (wf) {
            a->t->bf16_to_f32(wf, W, nj * a->k);
            qv_gemm_nt_serial(a->m, nj, a->k, X, a->k, wf, a->k, a->Y + j0, a->ldy);
        } else {   /* no memory for the panel: dot products, slow but right */
            for (int i = 0; i < a->m; i++)
                for (int j = 0; j < nj; j++)
                    a->Y[(size_t)i * a->ldy + j0 + j] = a->t->dot_f32_bf16(X + (size_t)i * a->k, W + (size_t)j * a->k, a->k);
        }
        if (a->b) add_bias(a->Y + j0, a->ldy, a->b + j0, a->m, nj);
    }
}

/* small m, columns [lo, hi): decode gemv or register tiles */
static void tile_range(lin_ctx *a, int64_t lo, int64_t hi) {
    const qv_ktable *t = a->t;
    qv_tile_fn tile = t->tile[a->prec];
    const int mr = t->mr, nr = t->nr;
    /* decode-sized X (a few rows) stays in L1/L2 whole: stream each W row once, no k blocking */
    const int kc = a->m <= mr ? a->k : t->kc;
    float bias[NR_MAX];
    if (a->m == 1 && t->gemv[a->prec]) {   /* the whole item: the kernel orders its memory streams over it */
        t->gemv[a->prec](a->Y + lo, a->xp, a->W + (size_t)lo * a->k, (size_t)a->k, a->k, (int)(hi - lo), a->b ? a->b + lo : NULL);
        return;
    }
    for (int64_t j0 = lo; j0 < hi; j0 += NC) {
        int jn = hi - j0 < NC ? (int)(hi - j0) : NC;
        for (int k0 = 0; k0 < a->k; k0 += kc) {
            int kk = a->k - k0 < kc ? a->k - k0 : kc;
            for (int i0 = 0; i0 < a->m; i0 += mr) {
                int mi = a->m - i0 < mr ? a->m - i0 : mr;
                const char *x = (const char *)a->xp + ((size_t)i0 * a->kp + (size_t)k0) * a->xelt;
                for (int j = 0; j < jn; j += nr) {
                    int nj = jn - j < nr ? jn - j : nr;
                    size_t col = (size_t)j0 + (size_t)j;
                    const float *bp = NULL;
                    if (k0 == 0 && a->b) {
                        for (int q = 0; q < nj; q++) bias[q] = qv_bf16_to_f32(a->b[col + q]);
                        bp = bias;
                    }
                    tile(a->Y + (size_t)i0 * a->ldy + col, a->ldy, x, (size_t)a->kp, a->W + col * (size_t)a->k + k0,
                         (size_t)a->k, kk, mi, nj, bp, k0 > 0);
                }
            }
        }
    }
}

void qv_outlier_add(float *Y, int ldy, int m, const float *xs, const float (*w)[QV_OUTLIER_MAX], int nj, int no) {
    for (int i = 0; i < m; i++) {
        const float *x = xs + (size_t)i * QV_OUTLIER_MAX;
        float *y = Y + (size_t)i * ldy;
        for (int j = 0; j < nj; j++) {
            float t = 0.0f;
            for (int s = 0; s < no; s++) t += x[s] * w[j][s];
            y[j] += t;
        }
    }
}

/* Y[:, lo..hi) += the outlier columns' products, in f32 from the exactly widened weights: per element
 * one sum over the columns in increasing order, added last (so the result does not depend on threads) */
static void outlier_fix(const lin_ctx *a, int64_t lo, int64_t hi) {
    enum { JB = 64 };
    float w[JB][QV_OUTLIER_MAX];
    const int no = a->n_out;
    for (int64_t j0 = lo; j0 < hi; j0 += JB) {
        int nj = hi - j0 < JB ? (int)(hi - j0) : JB;
        for (int j = 0; j < nj; j++)
            for (int s = 0; s < no; s++) w[j][s] = qv_bf16_to_f32(a->W[(size_t)(j0 + j) * a->k + a->out_col[s]]);
        qv_outlier_add(a->Y + j0, a->ldy, a->m, a->xs, w, nj, no);
    }
}

static void gemm_task(void *ctx, int ith, int nth) {
    lin_ctx *a = ctx;
    for (;;) {
        int64_t lo = (int64_t)atomic_fetch_add(&a->next, 1) * a->chunk;
        if (lo >= a->n) return;
        int64_t hi = lo + a->chunk < a->n ? lo + a->chunk : a->n;
        gemm_range(a, lo, hi);
        if (a->n_out) outlier_fix(a, lo, hi);
    }
}

enum { FIX_ROWS = 128 };   /* tile_task's pieces when X has outlier columns */

static void tile_task(void *ctx, int ith, int nth) {
    lin_ctx *a = ctx;
    for (;;) {
        int64_t lo = (int64_t)atomic_fetch_add(&a->next, 1) * a->chunk;
        if (lo >= a->n) return;
        int64_t hi = lo + a->chunk < a->n ? lo + a->chunk : a->n;
        if (!a->n_out) {
            tile_range(a, lo, hi);
            continue;
        }
        /* with outlier columns, in pieces whose weight rows are still in cache for outlier_fix's reads (one
         * per row and column: after a whole item they came from memory again, ~8 % of a q4 decode) */
        for (int64_t j = lo; j < hi; j += FIX_ROWS) {
            int64_t e = j + FIX_ROWS < hi ? j + FIX_ROWS : hi;
            tile_range(a, j, e);
            outlier_fix(a, j, e);
        }
    }
}

/* ---- FAST: outlier input columns ("massive activations", kernels.h) ---- */

typedef struct { const float *X; int m, k; float *cm; } scan_ctx;

/* cm[c] = max |X[i][c]| over rows i of [lo, hi); NaN never wins a comparison (so it is ignored) */
QV_O3
static void colmax_rows(float *restrict cm, const float *restrict X, int64_t lo, int64_t hi, int k) {
    for (int c = 0; c < k; c++) cm[c] = 0.0f;
    for (int64_t i = lo; i < hi; i++) {
        const float *x = X + (size_t)i * k;
        for (int c = 0; c < k; c++) {
            float v = fabsf(x[c]);
            cm[c] = v > cm[c] ? v : cm[c];
        }
    }
}

static void scan_task(void *ctx, int ith, int nth) {
    scan_ctx *a = ctx;
    int64_t lo, hi;
    qv_split(a->m, ith, nth, 1, &lo, &hi);
    colmax_rows(a->cm + (size_t)ith * a->k, a->X, lo, hi, a->k);   /* empty range: zeros */
}

/* k-th smallest of v[0..n) (v is reordered): quickselect, middle pivot */
static float select_kth(float *v, int n, int kth) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float p = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < p) i++;
            while (v[j] > p) j--;
            if (i <= j) { float t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
        }
        if (kth <= j) hi = j;
        else if (kth >= i) lo = i;
        else return v[kth];
    }
    return v[kth];
}

/* The columns c of X[m][k] whose max |X[i][c]| exceeds QV_OUTLIER_RATIO x the median over (a regular
 * sample of) columns of that max (at most QV_OUTLIER_MAX, the largest first; returned in increasing order). One pass over X
 * (threaded when big) plus O(k): maxima are exact, so the choice does not depend on the thread count.
 * 0 when X holds an Inf (the median or a max is not finite) or no scratch. */
static int outlier_scan(qv_pool *pool, const float *X, int m, int k, int big, int *cols) {
    int nth = big ? qv_pool_size(pool) : 1;
    float *cm = qv_kernel_scratch(2, (size_t)nth * (size_t)k * sizeof(float));
    if (!cm || k < 8) return 0;
    scan_ctx sc = {X, m, k, cm};
    if (nth > 1) qv_pool_run(pool, scan_task, &sc);
    else colmax_rows(cm, X, 0, m, k);
    for (int t = 1; t < nth; t++)
        for (int c = 0; c < k; c++) cm[c] = cm[(size_t)t * k + c] > cm[c] ? cm[(size_t)t * k + c] : cm[c];
    return qv_outlier_cols(cm, k, cols);
}

int qv_outlier_cols(const float *cm, int k, int *cols) {
    if (k < 8) return 0;
    /* the median of every step-th column (at most 512 of them): O(1) per call whatever k, so decode
     * (m = 1, where X is one row) pays next to nothing; a handful of outliers cannot move it */
    float tmp[512];
    int step = k > 512 ? (k + 511) / 512 : 1, ns = 0;
    for (int c = 0; c < k && ns < 512; c += step) tmp[ns++] = cm[c];
    float med = select_kth(tmp, ns, ns / 2), thr = med * QV_OUTLIER_RATIO;
    if (!(thr > 0.0f) || !isfinite(thr)) return 0;
    int n = 0;
    for (int c = 0; c < k; c++) {
        if (!(cm[c] > thr)) continue;
        if (!isfinite(cm[c])) return 0;
        /* keep the QV_OUTLIER_MAX largest (ties: the lower column), sorted by size while collecting */
        int at = n < QV_OUTLIER_MAX ? n++ : QV_OUTLIER_MAX;
        while (at > 0 && cm[cols[at - 1]] < cm[c]) {
            if (at < QV_OUTLIER_MAX) cols[at] = cols[at - 1];
            at--;
        }
        if (at < QV_OUTLIER_MAX) cols[at] = c;
    }
    for (int i = 1; i < n; i++)   /* increasing column order */
        for (int j = i; j > 0 && cols[j - 1] > cols[j]; j--) { int t = cols[j]; cols[j] = cols[j - 1]; cols[j - 1] = t; }
    return n;
}

typedef struct { const float *X; int m, k, n; const int *cols; float *xz, *xs; } split_ctx;

/* xz = X with the outlier columns zeroed, xs [m][QV_OUTLIER_MAX] = their values */
static void split_task(void *ctx, int ith, int nth) {
    split_ctx *s = ctx;
    int64_t lo, hi;
    qv_split(s->m, ith, nth, 1, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        float *z = s->xz + (size_t)i * s->k, *xs = s->xs + (size_t)i * QV_OUTLIER_MAX;
        memcpy(z, s->X + (size_t)i * s->k, (size_t)s->k * sizeof *z);
        for (int c = 0; c < QV_OUTLIER_MAX; c++) xs[c] = 0.0f;
        for (int c = 0; c < s->n; c++) {
            xs[c] = z[s->cols[c]];
            z[s->cols[c]] = 0.0f;
        }
    }
}

int qv_outlier_split(qv_pool *pool, const float *X, int m, int k, int *cols, const float **xz, const float **xs) {
    const int big = (size_t)m * (size_t)k >= ((size_t)1 << 16);
    int n = outlier_scan(pool, X, m, k, big, cols);
    if (!n) return 0;
    size_t zbytes = ((size_t)m * k * sizeof(float) + 63) / 64 * 64;
    char *buf = qv_kernel_scratch(3, zbytes + (size_t)m * QV_OUTLIER_MAX * sizeof(float));
    if (!buf) return 0;
    split_ctx s = {X, m, k, n, cols, (float *)buf, (float *)(buf + zbytes)};
    if (big) qv_pool_run(pool, split_task, &s);
    else split_task(&s, 0, 1);
    *xz = s.xz;
    *xs = s.xs;
    return n;
}

/* FAST: finds X's outlier columns and, when there are any, points a->X at a copy without them (a->xs,
 * a->n_out: outlier_fix adds them back exactly after the product) */
static void outlier_split(qv_pool *pool, lin_ctx *a) {
    const float *xz, *xs;
    a->n_out = qv_outlier_split(pool, a->X, a->m, a->k, a->out_col, &xz, &xs);
    if (!a->n_out) return;
    a->X = xz;
    a->xs = xs;
}

static void linear_fallback(const lin_ctx *a) {   /* no memory for the scratch: scalar, in place */
    for (int i = 0; i < a->m; i++)
        for (int j = 0; j < a->n; j++) {
            float s = 0.0f;
            for (int q = 0; q < a->k; q++) {
                float x = a->X[(size_t)i * a->k + q];
                if (a->prec == QV_PREC_FAST) x = qv_bf16_to_f32(qv_f32_to_bf16(x));
                s += x * qv_bf16_to_f32(a->W[(size_t)j * a->k + q]);
            }
            a->Y[(size_t)i * a->ldy + j] = (a->b ? qv_bf16_to_f32(a->b[j]) : 0.0f) + s;
        }
}

/* FAST with the ISA's 16-bit GEMM: 0 if it cannot run (no scratch, X not finite): take the f32 route */
static int linear_i16(qv_pool *pool, lin_ctx *a, int big) {
    int ldq = (a->k + 1) / 2 * 2, nkb = (a->k + QV_I16_KB - 1) / QV_I16_KB;
    size_t qbytes = ((size_t)a->m * (size_t)ldq * sizeof(int16_t) + 63) / 64 * 64;
    char *buf = qv_kernel_scratch(0, qbytes + (size_t)a->m * (size_t)nkb * sizeof(float));
    if (!buf) return 0;
    a->xp = buf;
    a->sx = (float *)(buf + qbytes);
    a->kp = ldq;
    a->nkb = nkb;
    atomic_init(&a->bad, 0);
    if (big) qv_pool_run(pool, xquant_task, a);
    else xquant_task(a, 0, 1);
    if (atomic_load(&a->bad)) return 0;
    a->i16 = 1;
    qv_pool_run(pool, gemm_task, a);
    return 1;
}

int qv_gemm_i16_wsrc(qv_pool *pool, float *Y, int ldy, const float *X, const qv_wsrc *W, const uint16_t *b, int m,
                     int n, int k) {
    const qv_ktable *t = table();
    if (m <= 0 || n <= 0 || k <= 0 || !t->gemm_i16) return 0;
    lin_ctx a = {.t = t, .prec = QV_PREC_FAST, .Y = Y, .ldy = ldy, .X = X, .ws = W, .b = b, .m = m, .n = n, .k = k};
    a.chunk = chunk_of(n, qv_pool_size(pool));
    atomic_init(&a.next, 0);
    return linear_i16(pool, &a, (size_t)m * (size_t)k >= ((size_t)1 << 16));
}

void qv_linear(qv_pool *pool, qv_precision prec, float *Y, int ldy, const float *X, const uint16_t *W,
               const uint16_t *b, int m, int n, int k) {
    if (m <= 0 || n <= 0) return;
    if (prec != QV_PREC_FAST) prec = QV_PREC_REF;
    const qv_ktable *t = table();
    if (k <= 0) {   /* empty sum: bias only */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) Y[(size_t)i * ldy + j] = b ? qv_bf16_to_f32(b[j]) : 0.0f;
        return;
    }
    lin_ctx a = {.t = t, .prec = prec, .Y = Y, .ldy = ldy, .X = X, .W = W, .b = b, .m = m, .n = n, .k = k};
    a.chunk = chunk_of(n, qv_pool_size(pool));
    atomic_init(&a.next, 0);
    const int big = (size_t)m * (size_t)k >= ((size_t)1 << 16);
    if (prec == QV_PREC_FAST) outlier_split(pool, &a);
    if (t->blas_min_m[prec] && m >= t->blas_min_m[prec]) {
        if (prec == QV_PREC_FAST && t->gemm_i16 && linear_i16(pool, &a, big)) return;
        a.kp = k;
        a.xelt = 4;
        if (prec == QV_PREC_FAST && t->gemm[prec] && t->gemm_xbf16[prec]) {
            a.kp = (k + 1) / 2 * 2;
            a.xelt = 2;
        }
        if (prec == QV_PREC_FAST) {
            a.xp = qv_kernel_scratch(0, (size_t)m * a.kp * a.xelt);
            if (!a.xp) { linear_fallback(&a); if (a.n_out) outlier_fix(&a, 0, n); return; }
            if (big) qv_pool_run(pool, xround_task, &a);
            else xround_task(&a, 0, 1);
        }
        qv_pool_run(pool, gemm_task, &a);
        return;
    }
    a.kp = (k + t->kblock - 1) / t->kblock * t->kblock;
    a.xelt = t->xbf16[prec] ? 2 : 4;
    a.xp = qv_kernel_scratch(0, (size_t)m * (size_t)a.kp * a.xelt);
    if (!a.xp) { linear_fallback(&a); if (a.n_out) outlier_fix(&a, 0, n); return; }
    if (big) qv_pool_run(pool, xprep_task, &a);
    else xprep_task(&a, 0, 1);
    qv_pool_run(pool, tile_task, &a);
}
