/* kernels_avx2.c — AVX2 + FMA versions of the kernels (compiled with -mavx2 -mfma -mf16c; chosen at run
 * time by kernels.c only when the CPU has them). The scalar reference in kernels.c is the spec.
 *
 * Linear tile (both precisions; FAST only differs in xprep rounding X to bf16 first): bf16 weights are
 * widened in registers without shuffles. A 256-bit load of 16 bf16 holds in each 32-bit lane the pair
 * (w[2i] low, w[2i+1] high): `lane << 16` is w[2i] as f32 and `lane & 0xffff0000` is w[2i+1]. The sum
 * over k does not care about order, so X is prepared once per call in the same even/odd order
 * (per 16-block: x0 x2 .. x14, x1 x3 .. x15) and each W element costs one integer op. */
#include "kernels_isa.h"
#include "quant.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include <string.h>

#include "tensor.h"
#include "gemm_avx2.h"

#define AI static inline __attribute__((always_inline))

AI __m256 widen_even(__m256i w) { return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)); }
AI __m256 widen_odd(__m256i w) {
    return _mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32((int)0xffff0000u)));
}
AI float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- vector kernels ---- */

static float dot_f32_bf16(const float *x, const uint16_t *y, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), load8_bf16(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), load8_bf16(y + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), load8_bf16(y + i), a0);
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += x[i] * qv_bf16_to_f32(y[i]);
    return s;
}

static void axpy_bf16(float *y, float a, const uint16_t *x, int n) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, load8_bf16(x + i))));
    for (; i < n; i++) y[i] += a * qv_bf16_to_f32(x[i]);
}

static float dot_f32(const float *x, const float *y, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

static void bf16_to_f32(float *dst, const uint16_t *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_bf16(src + i));
    for (; i < n; i++) dst[i] = qv_bf16_to_f32(src[i]);
}

static void f16_to_f32(float *dst, const uint16_t *src, int n) {   /* F16C: exact */
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = qv_f16_to_f32(src[i]);
}

/* ---- attention against a few query rows (kernels.h qv_attn_qk / qv_attn_pv_f16): each K row (each V
 * row) is read once, its 8-lane pieces meet up to 8 query rows held in accumulators (G: how many);
 * lengths past a multiple of 8 finish in scalar code ---- */

#define UNROLL8 _Pragma("GCC unroll 8")   /* the G accumulators stay in registers */
enum { ATTN_PF = 8192 };   /* prefetch distance, bytes ahead in the stream of rows (the tiles are contiguous) */

AI void attn_qk_g(float *S, int lds, const float *Q, int ldq, const int G, const float *K, int ldk, int n, int hd) {
    const int h8 = hd & ~7;
    for (int j = 0; j < n; j++) {
        const float *k = K + (size_t)j * ldk;
        __m256 acc[8];
        UNROLL8
        for (int r = 0; r < G; r++) acc[r] = _mm256_setzero_ps();
        for (int d = 0; d < h8; d += 8) {
            if (!(d & 15)) _mm_prefetch((const char *)(k + (size_t)ATTN_PF / 4 + d), _MM_HINT_T0);
            const __m256 kv = _mm256_loadu_ps(k + d);
            UNROLL8
            for (int r = 0; r < G; r++) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(Q + (size_t)r * ldq + d), kv, acc[r]);
        }
        UNROLL8
        for (int r = 0; r < G; r++) {
            float s = hsum(acc[r]);
            for (int d = h8; d < hd; d++) s += Q[(size_t)r * ldq + d] * k[d];
            S[(size_t)r * lds + j] = s;
        }
    }
}

QV_ATTN_ROW_GROUPS(attn_qk, attn_qk_g, float)

AI void attn_pv_g(float *O, int ldo, const float *P, int ldp, const int G, const uint16_t *V, int ldv, int hd, int n) {
    const int n8 = n & ~7;
    for (int d = 0; d < hd; d++) {
        const uint16_t *v = V + (size_t)d * ldv;
        __m256 acc[8];
        UNROLL8
        for (int r = 0; r < G; r++) acc[r] = _mm256_setzero_ps();
        for (int j = 0; j < n8; j += 8) {
            if (!(j & 31)) _mm_prefetch((const char *)(v + (size_t)ATTN_PF / 2 + j), _MM_HINT_T0);
            const __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + j)));
            UNROLL8
            for (int r = 0; r < G; r++) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(P + (size_t)r * ldp + j), vv, acc[r]);
        }
        UNROLL8
        for (int r = 0; r < G; r++) {
            float s = hsum(acc[r]);
            for (int j = n8; j < n; j++) s += P[(size_t)r * ldp + j] * qv_f16_to_f32(v[j]);
            O[(size_t)r * ldo + d] += s;
        }
    }
}

QV_ATTN_ROW_GROUPS(attn_pv_f16, attn_pv_g, uint16_t)

/* round to nearest even, NaN kept quiet (same bits as qv_f32_to_bf16) */
AI __m256i round_bf16_bits(__m256 v) {
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
    __m256i nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    __m256i isnan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                       _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(r, nan, isnan);   /* 8 x 32-bit lanes, value in the low 16 bits */
}

static void f32_to_bf16(uint16_t *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i r = round_bf16_bits(_mm256_loadu_ps(src + i));
        __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)(dst + i), p);
    }
    for (; i < n; i++) dst[i] = qv_f32_to_bf16(src[i]);
}

static void round_bf16(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(round_bf16_bits(_mm256_loadu_ps(src + i)), 16)));
    for (; i < n; i++) dst[i] = qv_bf16_to_f32(qv_f32_to_bf16(src[i]));
}

/* ---- linear: X preparation ---- */

static void xprep_common(float *dst, const float *X, int m, int k, int ldx, int kp, int round) {
    for (int i = 0; i < m; i++) {
        const float *x = X + (size_t)i * ldx;
        float *d = dst + (size_t)i * kp;
        for (int t0 = 0; t0 < kp; t0 += 16)
            for (int q = 0; q < 16; q++) {
                int t = t0 + q;
                float v = t < k ? x[t] : 0.0f;
                if (round) v = qv_bf16_to_f32(qv_f32_to_bf16(v));
                d[t0 + (q >> 1) + ((q & 1) << 3)] = v;
            }
    }
}
static void xprep_ref(void *dst, const float *X, int m, int k, int ldx, int kp) { xprep_common(dst, X, m, k, ldx, kp, 0); }
static void xprep_fast(void *dst, const float *X, int m, int k, int ldx, int kp) { xprep_common(dst, X, m, k, ldx, kp, 1); }

/* ---- linear: register tile MR x NR over one k range ---- */

#define MR 6
#define NR 2

/* one 16-wide k step; c[i][j] (+)= x_i . w_j; separate even/odd accumulators when the tile is small
 * (decode), so that enough independent FMA chains are in flight */
AI void step16(__m256 c[MR][NR], __m256 d[MR][NR], const float *x, size_t ldx, const uint16_t *w, size_t ldw,
               const int mr, const int nr, const int split) {
    __m256i raw[NR];
    __m256 wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < nr; j++) raw[j] = _mm256_loadu_si256((const __m256i *)(w + (size_t)j * ldw));
#pragma GCC unroll 4
    for (int j = 0; j < nr; j++) wv[j] = widen_even(raw[j]);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        __m256 xe = _mm256_loadu_ps(x + (size_t)i * ldx);
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) c[i][j] = _mm256_fmadd_ps(xe, wv[j], c[i][j]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < nr; j++) wv[j] = widen_odd(raw[j]);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        __m256 xo = _mm256_loadu_ps(x + (size_t)i * ldx + 8);
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            if (split) d[i][j] = _mm256_fmadd_ps(xo, wv[j], d[i][j]);
            else c[i][j] = _mm256_fmadd_ps(xo, wv[j], c[i][j]);
        }
    }
}

AI void tile_impl(float *Y, int ldy, const float *x, size_t ldx, const uint16_t *W, size_t ldw, int kk,
                  const int mr, const int nr, const float *bias, int acc) {
    const int split = mr * nr <= 4;
    __m256 c[MR][NR], d[MR][NR];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) c[i][j] = d[i][j] = _mm256_setzero_ps();
    int kf = kk & ~15;
    for (int t = 0; t < kf; t += 16) step16(c, d, x + t, ldx, W + t, ldw, mr, nr, split);
    if (kf < kk) {   /* W tail copied so that no load passes the row end; X is zero padded */
        uint16_t wt[NR][16];
        memset(wt, 0, sizeof wt);
        for (int j = 0; j < nr; j++) memcpy(wt[j], W + (size_t)j * ldw + kf, (size_t)(kk - kf) * 2);
        step16(c, d, x + kf, ldx, &wt[0][0], 16, mr, nr, split);
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            float s = hsum(split ? _mm256_add_ps(c[i][j], d[i][j]) : c[i][j]);
            float *y = Y + (size_t)i * ldy + j;
            float base = acc ? *y : 0.0f;
            if (bias) base += bias[j];
            *y = base + s;
        }
}

#define TILE(m, n)                                                                                          \
    static void tile_##m##_##n(float *Y, int ldy, const float *x, size_t ldx, const uint16_t *W, size_t ldw, \
                               int kk, const float *bias, int acc) {                                        \
        tile_impl(Y, ldy, x, ldx, W, ldw, kk, m, n, bias, acc);                                             \
    }
TILE(1, 1) TILE(1, 2) TILE(2, 1) TILE(2, 2) TILE(3, 1) TILE(3, 2)
TILE(4, 1) TILE(4, 2) TILE(5, 1) TILE(5, 2) TILE(6, 1) TILE(6, 2)

typedef void (*tile_fixed)(float *, int, const float *, size_t, const uint16_t *, size_t, int, const float *, int);
static const tile_fixed k_tiles[MR][NR] = {
    {tile_1_1, tile_1_2}, {tile_2_1, tile_2_2}, {tile_3_1, tile_3_2},
    {tile_4_1, tile_4_2}, {tile_5_1, tile_5_2}, {tile_6_1, tile_6_2},
};

static void tile(float *Y, int ldy, const void *x, size_t ldx, const uint16_t *W, size_t ldw, int kk, int mr,
                 int nr, const float *bias, int acc) {
    k_tiles[mr - 1][nr - 1](Y, ldy, x, ldx, W, ldw, kk, bias, acc);
}

/* decode: 4 W rows at a time, even/odd accumulators apart (8 FMA chains), prefetch ahead in each row.
 * Row r of the group is W + r * rs, its result y[r * ys] and its bias bias[r * ys]. */
AI void gemv_rows(float *y, size_t ys, const float *x, const uint16_t *W, size_t rs, int k, const int nr,
                  const uint16_t *bias) {
    __m256 c[4], d[4];
#pragma GCC unroll 4
    for (int j = 0; j < nr; j++) c[j] = d[j] = _mm256_setzero_ps();
    int kf = k & ~15;
    for (int t = 0; t < kf; t += 16) {
        __m256 xe = _mm256_loadu_ps(x + t), xo = _mm256_loadu_ps(x + t + 8);
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            const uint16_t *w = W + (size_t)j * rs + t;
            _mm_prefetch((const char *)(w + 512), _MM_HINT_T0);
            __m256i r = _mm256_loadu_si256((const __m256i *)w);
            c[j] = _mm256_fmadd_ps(xe, widen_even(r), c[j]);
            d[j] = _mm256_fmadd_ps(xo, widen_odd(r), d[j]);
        }
    }
    if (kf < k) {
        uint16_t wt[16];
        __m256 xe = _mm256_loadu_ps(x + kf), xo = _mm256_loadu_ps(x + kf + 8);
        for (int j = 0; j < nr; j++) {
            memset(wt, 0, sizeof wt);
            memcpy(wt, W + (size_t)j * rs + kf, (size_t)(k - kf) * 2);
            __m256i r = _mm256_loadu_si256((const __m256i *)wt);
            c[j] = _mm256_fmadd_ps(xe, widen_even(r), c[j]);
            d[j] = _mm256_fmadd_ps(xo, widen_odd(r), d[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < nr; j++)
        y[j * ys] = (bias ? qv_bf16_to_f32(bias[j * ys]) : 0.0f) + hsum(_mm256_add_ps(c[j], d[j]));
}

/* The 4 rows of a group are taken a quarter of the range apart (rows j, j + q, j + 2q, j + 3q), so each
 * of the 4 streams runs on through consecutive rows: with short rows (k = 3584: 7 KiB), groups of 4
 * adjacent rows started 3 new memory streams per group and ran at about half the bandwidth. */
static void gemv(float *y, const void *xv, const uint16_t *W, size_t ldw, int k, int n, const uint16_t *bias) {
    const float *x = xv;
    int q = n / 4;
    for (int j = 0; j < q; j++)
        gemv_rows(y + j, (size_t)q, x, W + (size_t)j * ldw, (size_t)q * ldw, k, 4, bias ? bias + j : NULL);
    for (int j = 4 * q; j < n; j++) gemv_rows(y + j, 1, x, W + (size_t)j * ldw, ldw, k, 1, bias ? bias + j : NULL);
}

/* ---- linear, large m: packed W panels, 6 x 16 outer-product micro-kernel ----
 * W rows are widened and packed 16 at a time, k-major ([kc][16] f32, rows past n are zero), for a block of
 * GB_NB rows and GB_KC columns (192 KiB, L2); 6 rows of X are broadcast one k at a time against two
 * 8-wide W vectors: 12 accumulators stay in registers over the whole k block (BLIS-style). The 6 x kc
 * sliver of X (3 KiB) stays in L1 across the block's 24 panels, which stream from L2.
 * Block sizes (A/B of both versions interleaved in one process on the 2-core Zen 3, 7B shapes; the micro-
 * kernel alone reaches ~95 GFLOP/s from L1): the cost is in bringing X (7-19 MiB, L3/memory) to L1 once per
 * column block, so a wide block (GB_NB 384 instead of 96: a quarter of the passes over X) with a short k
 * block (GB_KC 128, the W block stays 192 KiB) is ~5-8% faster. Packing X into contiguous slivers was
 * slower (not amortized over enough columns), and so was the BLIS order (W panel in L1, X streamed from
 * L2); software prefetch of W or of the next X sliver did not help. */


/* bp[t][16] = widen(W[r][t]) for r < rows (zero for rows <= r < 16), t < kc */
static void pack_panel(float *bp, const uint16_t *W, size_t ldw, int rows, int kc) {
    int t = 0;
    for (; t + 8 <= kc; t += 8)
        for (int h = 0; h < 2; h++) {
            __m256 r[8];
            for (int q = 0; q < 8; q++) {
                int row = h * 8 + q;
                r[q] = row < rows ? load8_bf16(W + (size_t)row * ldw + t) : _mm256_setzero_ps();
            }
            transpose8(r);
            for (int q = 0; q < 8; q++) _mm256_store_ps(bp + (size_t)(t + q) * 16 + h * 8, r[q]);
        }
    for (; t < kc; t++)
        for (int r = 0; r < 16; r++) bp[t * 16 + r] = r < rows ? qv_bf16_to_f32(W[(size_t)r * ldw + t]) : 0.0f;
}

typedef struct { const uint16_t *W; size_t ldw; } bf16_pack_ctx;

static void pack_bf16(const void *ctx, float *bp, int j, int rows, int k0, int kc) {
    const bf16_pack_ctx *c = ctx;
    pack_panel(bp, c->W + (size_t)j * c->ldw + k0, c->ldw, rows, kc);
}

static void gemm(float *Y, int ldy, const void *Xv, int ldx, const uint16_t *W, size_t ldw, const uint16_t *bias,
                 int m, int n, int k, void *scratch) {
    bf16_pack_ctx c = {W, ldw};
    gemm_blocked(Y, ldy, Xv, ldx, pack_bf16, &c, bias, m, n, k, scratch);
}

static const qv_ktable k_avx2 = {
    .name = "avx2",
    .kblock = 16,
    .kc = 512,
    .mr = MR,
    .nr = NR,
    .xbf16 = {0, 0},
    .xprep = {xprep_ref, xprep_fast},
    .tile = {tile, tile},
    .gemv = {gemv, gemv},
    .gemm = {gemm, gemm},
    .gemm_xbf16 = {0, 0},
    .gemm_scratch = (size_t)GB_NB * GB_KC * sizeof(float),
    .xquant_i16 = i16_quant_x,
    .gemm_i16 = gemm_i16_w,
    .gemm_i16_scratch = (size_t)GI_NB * QV_I16_KB * sizeof(int16_t) + GI_NB * sizeof(float),
    .blas_min_m = {16, 16},
    .round_bf16 = round_bf16,
    .dot_f32_bf16 = dot_f32_bf16,
    .axpy_bf16 = axpy_bf16,
    .dot_f32 = dot_f32,
    .bf16_to_f32 = bf16_to_f32,
    .f16_to_f32 = f16_to_f32,
    .f32_to_bf16 = f32_to_bf16,
    .attn_qk = attn_qk,
    .attn_pv_f16 = attn_pv_f16,
    .elt = &qv_elt_v8,
    .q8 = qv_q8_table_avx2,
};

const qv_ktable *qv_ktable_avx2(void) { return &k_avx2; }

#else
const qv_ktable *qv_ktable_avx2(void) { return NULL; }
#endif
