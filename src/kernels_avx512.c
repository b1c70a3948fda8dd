/* kernels_avx512.c — AVX-512 (F/BW/VL/DQ) + AVX512_BF16 versions of the kernels, chosen at run time by
 * kernels.c only when the CPU has all of them. The scalar reference in kernels.c is the spec.
 *
 * REF linear: bf16 weights widened in registers (zero-extend + shift, natural order), f32 FMA; m >= 16
 * goes to OpenBLAS on widened panels like AVX2. FAST linear: X rounded to bf16 once per call (the same
 * round-to-nearest-even bits as qv_f32_to_bf16), then vdpbf16ps: each instruction multiplies 16 pairs of
 * bf16 and adds both products into 16 f32 sums; W rows are used straight from the mapping. Tails use
 * masked loads, so nothing past a weight row is read. */
#include "kernels_isa.h"
#include "quant.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512BF16__)
#include <immintrin.h>
#include <string.h>

#include "tensor.h"

#define AI static inline __attribute__((always_inline))

/* the first n lanes (none for n <= 0) */
AI __mmask16 mask16(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u); }
AI __mmask32 mask32(int n) { return n >= 32 ? (__mmask32)0xffffffffu : n <= 0 ? 0 : (__mmask32)((1u << n) - 1u); }

/* 16 bf16 -> 16 f32 (natural order); masked lanes read nothing and give 0 */
AI __m512 load16_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
AI __m512 load16_bf16_mask(const uint16_t *p, int n) {
    __m256i h = _mm256_maskz_loadu_epi16(mask16(n), p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* round to nearest even, NaN kept quiet: 16 lanes, value in the low 16 bits */
AI __m512i round_bf16_bits(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
    __m512i nan = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    __mmask16 isnan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                              _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_blend_epi32(isnan, r, nan);
}

/* ---- vector kernels ---- */

static float dot_f32_bf16(const float *x, const uint16_t *y, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), load16_bf16(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), load16_bf16(y + i + 16), a1);
    }
    for (; i < n; i += 16) {
        int r = n - i;
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask16(r), x + i), load16_bf16_mask(y + i, r), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

static void axpy_bf16(float *y, float a, const uint16_t *x, int n) {
    __m512 va = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_mul_ps(va, load16_bf16_mask(x + i, n - i)));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

static float dot_f32(const float *x, const float *y, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

static void bf16_to_f32(float *dst, const uint16_t *src, int n) {
    for (int i = 0; i < n; i += 16) _mm512_mask_storeu_ps(dst + i, mask16(n - i), load16_bf16_mask(src + i, n - i));
}

static void f16_to_f32(float *dst, const uint16_t *src, int n) {   /* exact */
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
    }
}

#define UNROLL8 _Pragma("GCC unroll 8")   /* the G accumulators stay in registers */
enum { ATTN_PF = 8192 };   /* prefetch distance, bytes ahead in the stream of rows (the tiles are contiguous) */

/* ---- attention against a few query rows (kernels.h qv_attn_qk / qv_attn_pv_f16): each K row (each V
 * row) is read once, its 16-lane pieces meet up to 8 query rows held in accumulators (G: how many) ---- */

AI void attn_qk_g(float *S, int lds, const float *Q, int ldq, const int G, const float *K, int ldk, int n, int hd) {
    for (int j = 0; j < n; j++) {
        const float *k = K + (size_t)j * ldk;
        __m512 acc[8];
        UNROLL8
        for (int r = 0; r < G; r++) acc[r] = _mm512_setzero_ps();
        int d = 0;
        for (; d + 16 <= hd; d += 16) {   /* whole pieces: plain loads, which fold into the FMAs */
            _mm_prefetch((const char *)(k + (size_t)ATTN_PF / 4 + d), _MM_HINT_T0);
            const __m512 kv = _mm512_loadu_ps(k + d);
            UNROLL8
            for (int r = 0; r < G; r++) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(Q + (size_t)r * ldq + d), kv, acc[r]);
        }
        if (d < hd) {
            const __mmask16 m = mask16(hd - d);
            const __m512 kv = _mm512_maskz_loadu_ps(m, k + d);
            UNROLL8
            for (int r = 0; r < G; r++) acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, Q + (size_t)r * ldq + d), kv, acc[r]);
        }
        UNROLL8
        for (int r = 0; r < G; r++) S[(size_t)r * lds + j] = _mm512_reduce_add_ps(acc[r]);
    }
}

QV_ATTN_ROW_GROUPS(attn_qk, attn_qk_g, float)

AI void attn_pv_g(float *O, int ldo, const float *P, int ldp, const int G, const uint16_t *V, int ldv, int hd, int n) {
    for (int d = 0; d < hd; d++) {
        const uint16_t *v = V + (size_t)d * ldv;
        __m512 acc[8];
        UNROLL8
        for (int r = 0; r < G; r++) acc[r] = _mm512_setzero_ps();
        int j = 0;
        for (; j + 16 <= n; j += 16) {   /* whole pieces: plain loads, which fold into the FMAs */
            if (!(j & 31)) _mm_prefetch((const char *)(v + (size_t)ATTN_PF / 2 + j), _MM_HINT_T0);
            const __m512 vv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + j)));
            UNROLL8
            for (int r = 0; r < G; r++) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(P + (size_t)r * ldp + j), vv, acc[r]);
        }
        if (j < n) {
            const __mmask16 m = mask16(n - j);
            const __m512 vv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, v + j));
            UNROLL8
            for (int r = 0; r < G; r++) acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, P + (size_t)r * ldp + j), vv, acc[r]);
        }
        UNROLL8
        for (int r = 0; r < G; r++) O[(size_t)r * ldo + d] += _mm512_reduce_add_ps(acc[r]);
    }
}

QV_ATTN_ROW_GROUPS(attn_pv_f16, attn_pv_g, uint16_t)

static void f32_to_bf16(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        _mm512_mask_cvtepi32_storeu_epi16(dst + i, m, round_bf16_bits(_mm512_maskz_loadu_ps(m, src + i)));
    }
}

static void round_bf16(float *dst, const float *src, int n) {
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = mask16(n - i);
        __m512i b = _mm512_slli_epi32(round_bf16_bits(_mm512_maskz_loadu_ps(m, src + i)), 16);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(b));
    }
}

/* ---- REF linear: f32 X (natural order, rows padded to 16 with zeros) x widened bf16 W ---- */

#define MR 4
#define NR 4

static void xprep_ref(void *dst, const float *X, int m, int k, int ldx, int kp) {
    float *d = dst;
    for (int i = 0; i < m; i++) {
        memcpy(d + (size_t)i * kp, X + (size_t)i * ldx, (size_t)k * sizeof(float));
        for (int t = k; t < kp; t++) d[(size_t)i * kp + t] = 0.0f;
    }
}

AI void store_tile(float *Y, int ldy, __m512 c[MR][NR], const int mr, const int nr, const float *bias, int acc) {
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            float *y = Y + (size_t)i * ldy + j;
            float base = acc ? *y : 0.0f;
            if (bias) base += bias[j];
            *y = base + _mm512_reduce_add_ps(c[i][j]);
        }
}

AI void tile_ref_impl(float *Y, int ldy, const float *x, size_t ldx, const uint16_t *W, size_t ldw, int kk,
                      const int mr, const int nr, const float *bias, int acc) {
    __m512 c[MR][NR];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) c[i][j] = _mm512_setzero_ps();
    for (int t = 0; t < kk; t += 16) {
        int r = kk - t;   /* x is zero padded to 16; W is masked at the row end */
        __m512 w[NR];
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++)
            w[j] = r >= 16 ? load16_bf16(W + (size_t)j * ldw + t) : load16_bf16_mask(W + (size_t)j * ldw + t, r);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            __m512 xv = _mm512_loadu_ps(x + (size_t)i * ldx + t);
#pragma GCC unroll 4
            for (int j = 0; j < nr; j++) c[i][j] = _mm512_fmadd_ps(xv, w[j], c[i][j]);
        }
    }
    store_tile(Y, ldy, c, mr, nr, bias, acc);
}

/* ---- FAST linear: bf16 X (rows padded to 32 with zeros) . bf16 W with vdpbf16ps ---- */

static void xprep_fast(void *dst, const float *X, int m, int k, int ldx, int kp) {
    uint16_t *d = dst;
    for (int i = 0; i < m; i++) {
        f32_to_bf16(d + (size_t)i * kp, X + (size_t)i * ldx, k);
        for (int t = k; t < kp; t++) d[(size_t)i * kp + t] = 0;
    }
}

AI __m512bh as_bh(__m512i v) { return (__m512bh)v; }

AI void tile_fast_impl(float *Y, int ldy, const uint16_t *x, size_t ldx, const uint16_t *W, size_t ldw, int kk,
                       const int mr, const int nr, const float *bias, int acc) {
    __m512 c[MR][NR];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) c[i][j] = _mm512_setzero_ps();
    for (int t = 0; t < kk; t += 32) {
        int r = kk - t;
        __m512i w[NR];
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++)
            w[j] = r >= 32 ? _mm512_loadu_si512((const void *)(W + (size_t)j * ldw + t))
                           : _mm512_maskz_loadu_epi16(mask32(r), W + (size_t)j * ldw + t);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            __m512i xv = _mm512_loadu_si512((const void *)(x + (size_t)i * ldx + t));
#pragma GCC unroll 4
            for (int j = 0; j < nr; j++) c[i][j] = _mm512_dpbf16_ps(c[i][j], as_bh(xv), as_bh(w[j]));
        }
    }
    store_tile(Y, ldy, c, mr, nr, bias, acc);
}

/* prefetch distance in each row, elements (8 KiB: 1 KiB ahead read 26-41 GB/s, 8 KiB 33-40 on 2 Zen 4 cores) */
enum { GEMV_PF = 4096 };

/* FAST decode: 4 W rows a quarter of the range apart (rows j, j + q, j + 2q, j + 3q: each stream runs on
 * through consecutive rows, as the AVX2 gemv), two accumulators per row (8 vdpbf16ps chains), prefetch
 * ahead in each row; x is bf16, zero padded to 32. Row r of the group is W + r * rs, its result y[r * ys]. */
AI void gemv_fast_rows(float *y, size_t ys, const uint16_t *x, const uint16_t *W, size_t rs, int k, const int nr,
                       const uint16_t *bias) {
    __m512 c[4], d[4];
#pragma GCC unroll 4
    for (int j = 0; j < nr; j++) c[j] = d[j] = _mm512_setzero_ps();
    const int k64 = k & ~63;
    for (int t = 0; t < k64; t += 64) {
        const __m512i x0 = _mm512_loadu_si512((const void *)(x + t)), x1 = _mm512_loadu_si512((const void *)(x + t + 32));
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            const uint16_t *w = W + (size_t)j * rs + t;
            _mm_prefetch((const char *)(w + GEMV_PF), _MM_HINT_T0);
            _mm_prefetch((const char *)(w + GEMV_PF + 32), _MM_HINT_T0);
            c[j] = _mm512_dpbf16_ps(c[j], as_bh(x0), as_bh(_mm512_loadu_si512((const void *)w)));
            d[j] = _mm512_dpbf16_ps(d[j], as_bh(x1), as_bh(_mm512_loadu_si512((const void *)(w + 32))));
        }
    }
    for (int t = k64; t < k; t += 32) {   /* x is padded to 32 with zeros; W masked at the row end */
        const __m512i x0 = _mm512_loadu_si512((const void *)(x + t));
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++)
            c[j] = _mm512_dpbf16_ps(c[j], as_bh(x0), as_bh(_mm512_maskz_loadu_epi16(mask32(k - t), W + (size_t)j * rs + t)));
    }
#pragma GCC unroll 4
    for (int j = 0; j < nr; j++)
        y[j * ys] = (bias ? qv_bf16_to_f32(bias[j * ys]) : 0.0f) + _mm512_reduce_add_ps(_mm512_add_ps(c[j], d[j]));
}

static void gemv_fast(float *y, const void *xv, const uint16_t *W, size_t ldw, int k, int n, const uint16_t *bias) {
    const uint16_t *x = xv;
    const int q = n / 4;
    for (int j = 0; j < q; j++)
        gemv_fast_rows(y + j, (size_t)q, x, W + (size_t)j * ldw, (size_t)q * ldw, k, 4, bias ? bias + j : NULL);
    for (int j = 4 * q; j < n; j++) gemv_fast_rows(y + j, 1, x, W + (size_t)j * ldw, ldw, k, 1, bias ? bias + j : NULL);
}

#define TILES(m, n)                                                                                             \
    static void tref_##m##_##n(float *Y, int ldy, const void *x, size_t ldx, const uint16_t *W, size_t ldw,   \
                               int kk, const float *bias, int acc) {                                           \
        tile_ref_impl(Y, ldy, (const float *)x, ldx, W, ldw, kk, m, n, bias, acc);                             \
    }                                                                                                          \
    static void tfast_##m##_##n(float *Y, int ldy, const void *x, size_t ldx, const uint16_t *W, size_t ldw,  \
                                int kk, const float *bias, int acc) {                                          \
        tile_fast_impl(Y, ldy, (const uint16_t *)x, ldx, W, ldw, kk, m, n, bias, acc);                         \
    }
TILES(1, 1) TILES(1, 2) TILES(1, 3) TILES(1, 4) TILES(2, 1) TILES(2, 2) TILES(2, 3) TILES(2, 4)
TILES(3, 1) TILES(3, 2) TILES(3, 3) TILES(3, 4) TILES(4, 1) TILES(4, 2) TILES(4, 3) TILES(4, 4)

typedef void (*tile_fixed)(float *, int, const void *, size_t, const uint16_t *, size_t, int, const float *, int);
static const tile_fixed k_ref[MR][NR] = {
    {tref_1_1, tref_1_2, tref_1_3, tref_1_4}, {tref_2_1, tref_2_2, tref_2_3, tref_2_4},
    {tref_3_1, tref_3_2, tref_3_3, tref_3_4}, {tref_4_1, tref_4_2, tref_4_3, tref_4_4},
};
static const tile_fixed k_fast[MR][NR] = {
    {tfast_1_1, tfast_1_2, tfast_1_3, tfast_1_4}, {tfast_2_1, tfast_2_2, tfast_2_3, tfast_2_4},
    {tfast_3_1, tfast_3_2, tfast_3_3, tfast_3_4}, {tfast_4_1, tfast_4_2, tfast_4_3, tfast_4_4},
};

static void tile_ref(float *Y, int ldy, const void *x, size_t ldx, const uint16_t *W, size_t ldw, int kk, int mr,
                     int nr, const float *bias, int acc) {
    k_ref[mr - 1][nr - 1](Y, ldy, x, ldx, W, ldw, kk, bias, acc);
}
static void tile_fast(float *Y, int ldy, const void *x, size_t ldx, const uint16_t *W, size_t ldw, int kk, int mr,
                      int nr, const float *bias, int acc) {
    k_fast[mr - 1][nr - 1](Y, ldy, x, ldx, W, ldw, kk, bias, acc);
}

/* ---- large m: packed W panels of 32 rows, 8 x 32 outer-product micro-kernels ----
 * W is packed as bf16 pairs, k-major: bp[p][r] = (W[r][2p] low, W[r][2p+1] high), rows past n and the
 * column past an odd k are zero. FAST feeds the pairs to vdpbf16ps against broadcast (x[2p], x[2p+1])
 * pairs of the bf16 X; REF widens them in registers (pair << 16 is W[r][2p], pair & 0xffff0000 is
 * W[r][2p+1]) against broadcast f32 x[2p] and x[2p+1]. */
enum { G_KC = 512, G_NB = 128, G_MR = 8 };

static void pack_pairs(uint32_t *bp, const uint16_t *W, size_t ldw, int rows, int kc) {
    const int np = (kc + 1) / 2;
    for (int r = 0; r < 32; r++) {
        if (r >= rows) {
            for (int p = 0; p < np; p++) bp[(size_t)p * 32 + r] = 0;
            continue;
        }
        const uint16_t *w = W + (size_t)r * ldw;
        int p = 0;
        for (; 2 * p + 1 < kc; p++) {
            uint32_t v;
            memcpy(&v, w + 2 * p, 4);
            bp[(size_t)p * 32 + r] = v;
        }
        if (p < np) bp[(size_t)p * 32 + r] = w[2 * p];   /* odd kc: second half zero */
    }
}

AI void gstore(float *Y, int ldy, __m512 c[G_MR][2], const int mr, int nr, const uint16_t *bias, int first) {
    __mmask16 m0 = mask16(nr), m1 = mask16(nr - 16 > 0 ? nr - 16 : 0);
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (first && bias) {
        b0 = load16_bf16_mask(bias, nr);
        if (nr > 16) b1 = load16_bf16_mask(bias + 16, nr - 16);
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float *y = Y + (size_t)i * ldy;
        __m512 y0 = first ? b0 : _mm512_maskz_loadu_ps(m0, y);
        _mm512_mask_storeu_ps(y, m0, _mm512_add_ps(y0, c[i][0]));
        if (nr > 16) {
            __m512 y1 = first ? b1 : _mm512_maskz_loadu_ps(m1, y + 16);
            _mm512_mask_storeu_ps(y + 16, m1, _mm512_add_ps(y1, c[i][1]));
        }
    }
}

AI void ukernel_ref(float *Y, int ldy, const float *x, int ldx, const uint32_t *bp, int kc, const int mr, int nr,
                    const uint16_t *bias, int first) {
    __m512 c[G_MR][2];
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    const int np = kc / 2;
    for (int p = 0; p < np; p++) {
        __m512i w0 = _mm512_loadu_si512((const void *)(bp + (size_t)p * 32));
        __m512i w1 = _mm512_loadu_si512((const void *)(bp + (size_t)p * 32 + 16));
        __m512 e0 = _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16)), e1 = _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16));
        __m512 o0 = _mm512_castsi512_ps(_mm512_and_si512(w0, hi)), o1 = _mm512_castsi512_ps(_mm512_and_si512(w1, hi));
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m512 xe = _mm512_set1_ps(x[(size_t)i * ldx + 2 * p]), xo = _mm512_set1_ps(x[(size_t)i * ldx + 2 * p + 1]);
            c[i][0] = _mm512_fmadd_ps(xe, e0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(xe, e1, c[i][1]);
            c[i][0] = _mm512_fmadd_ps(xo, o0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(xo, o1, c[i][1]);
        }
    }
    if (kc & 1) {   /* last column alone: x[kc] is not read */
        __m512i w0 = _mm512_loadu_si512((const void *)(bp + (size_t)np * 32));
        __m512i w1 = _mm512_loadu_si512((const void *)(bp + (size_t)np * 32 + 16));
        __m512 e0 = _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16)), e1 = _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16));
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m512 xe = _mm512_set1_ps(x[(size_t)i * ldx + 2 * np]);
            c[i][0] = _mm512_fmadd_ps(xe, e0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(xe, e1, c[i][1]);
        }
    }
    gstore(Y, ldy, c, mr, nr, bias, first);
}

AI void ukernel_fast(float *Y, int ldy, const uint16_t *x, int ldx, const uint32_t *bp, int kc, const int mr, int nr,
                     const uint16_t *bias, int first) {
    __m512 c[G_MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    const int np = (kc + 1) / 2;   /* an odd kc reads the zero padding column (or the next block's x) times 0 */
    for (int p = 0; p < np; p++) {
        __m512i w0 = _mm512_loadu_si512((const void *)(bp + (size_t)p * 32));
        __m512i w1 = _mm512_loadu_si512((const void *)(bp + (size_t)p * 32 + 16));
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            uint32_t xv;
            memcpy(&xv, x + (size_t)i * ldx + 2 * p, 4);
            __m512i xb = _mm512_set1_epi32((int)xv);
            c[i][0] = _mm512_dpbf16_ps(c[i][0], as_bh(xb), as_bh(w0));
            c[i][1] = _mm512_dpbf16_ps(c[i][1], as_bh(xb), as_bh(w1));
        }
    }
    gstore(Y, ldy, c, mr, nr, bias, first);
}

#define UK_SWITCH(fn, xt)                                                                                      \
    static void fn##_any(float *Y, int ldy, const xt *x, int ldx, const uint32_t *bp, int kc, int mr, int nr, \
                         const uint16_t *bias, int first) {                                                   \
        switch (mr) {                                                                                         \
        case 8: fn(Y, ldy, x, ldx, bp, kc, 8, nr, bias, first); break;                                        \
        case 7: fn(Y, ldy, x, ldx, bp, kc, 7, nr, bias, first); break;                                        \
        case 6: fn(Y, ldy, x, ldx, bp, kc, 6, nr, bias, first); break;                                        \
        case 5: fn(Y, ldy, x, ldx, bp, kc, 5, nr, bias, first); break;                                        \
        case 4: fn(Y, ldy, x, ldx, bp, kc, 4, nr, bias, first); break;                                        \
        case 3: fn(Y, ldy, x, ldx, bp, kc, 3, nr, bias, first); break;                                        \
        case 2: fn(Y, ldy, x, ldx, bp, kc, 2, nr, bias, first); break;                                        \
        default: fn(Y, ldy, x, ldx, bp, kc, 1, nr, bias, first); break;                                       \
        }                                                                                                     \
    }
UK_SWITCH(ukernel_ref, float)
UK_SWITCH(ukernel_fast, uint16_t)

AI void gemm_impl(float *Y, int ldy, const void *X, int ldx, const uint16_t *W, size_t ldw, const uint16_t *bias,
                  int m, int n, int k, void *scratch, const int fast) {
    uint32_t *bp = scratch;   /* [G_NB / 32][G_KC / 2][32] */
    const size_t panel = (size_t)(G_KC / 2) * 32;
    for (int j0 = 0; j0 < n; j0 += G_NB) {
        int nb = n - j0 < G_NB ? n - j0 : G_NB;
        for (int k0 = 0; k0 < k; k0 += G_KC) {
            int kc = k - k0 < G_KC ? k - k0 : G_KC;
            for (int p = 0; p < nb; p += 32)
                pack_pairs(bp + (size_t)(p / 32) * panel, W + (size_t)(j0 + p) * ldw + k0, ldw, nb - p < 32 ? nb - p : 32, kc);
            for (int i0 = 0; i0 < m; i0 += G_MR) {
                int mr = m - i0 < G_MR ? m - i0 : G_MR;
                for (int p = 0; p < nb; p += 32) {
                    int nr = nb - p < 32 ? nb - p : 32;
                    float *y = Y + (size_t)i0 * ldy + j0 + p;
                    const uint16_t *bb = bias ? bias + j0 + p : NULL;
                    if (fast)
                        ukernel_fast_any(y, ldy, (const uint16_t *)X + (size_t)i0 * ldx + k0, ldx, bp + (size_t)(p / 32) * panel,
                                         kc, mr, nr, bb, k0 == 0);
                    else
                        ukernel_ref_any(y, ldy, (const float *)X + (size_t)i0 * ldx + k0, ldx, bp + (size_t)(p / 32) * panel,
                                        kc, mr, nr, bb, k0 == 0);
                }
            }
        }
    }
}

static void gemm_ref(float *Y, int ldy, const void *X, int ldx, const uint16_t *W, size_t ldw, const uint16_t *bias,
                     int m, int n, int k, void *scratch) {
    gemm_impl(Y, ldy, X, ldx, W, ldw, bias, m, n, k, scratch, 0);
}
static void gemm_fast(float *Y, int ldy, const void *X, int ldx, const uint16_t *W, size_t ldw, const uint16_t *bias,
                      int m, int n, int k, void *scratch) {
    gemm_impl(Y, ldy, X, ldx, W, ldw, bias, m, n, k, scratch, 1);
}

/* ---- FAST, large m: the 16-bit integer GEMM (kernels_isa.h; the scalar qv_i16_gemm_ref is its spec, bit
 * for bit) on AVX512-VNNI. vpdpwssd multiplies 16 pairs of int16 and adds both products into 16 int32
 * sums: 32 multiply-adds per instruction, as many as vdpbf16ps, but X keeps 12 bits per 128-wide block
 * instead of bf16's 8 (issue 16: ~4x less error for the same arithmetic; the AVX2 table runs the same
 * numbers with vpmaddwd). W is quantized panel by panel from the mapping, 16 rows at a time into the
 * layout the AVX2 file uses ([kc/2][16 rows][2] int16 per panel). */
enum { GI_NB = 256 };   /* W rows per block: 256 x 512 int16 = 256 KiB (L2) */

/* X rows -> int16 [m][ldq] (zero padded) and block scales [m][nkb] at +-qmax, the bits of
 * qv_i16_quant_x_ref (qmax QV_I16_QX; the f32-rows packer below uses it with QV_I16_QW): the product with
 * inv rounds to nearest even like lrintf; a NaN (or Inf * 0) converts to INT32_MIN, whose low 16 bits are
 * the reference's 0. Returns -1 when X holds a non-finite value. */
static int i16_quant_rows(int16_t *q, int ldq, float *sx, int nkb, const float *X, int ldx, int m, int k, float qmax) {
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    int bad = 0;
    for (int i = 0; i < m; i++) {
        const float *x = X + (size_t)i * ldx;
        int16_t *qi = q + (size_t)i * ldq;
        for (int b = 0; b < nkb; b++) {
            const int k0 = b * QV_I16_KB, n = k - k0 < QV_I16_KB ? k - k0 : QV_I16_KB;
            __m512i mv = _mm512_setzero_si512();
            for (int t = 0; t < n; t += 16)
                mv = _mm512_max_epu32(mv, _mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(mask16(n - t), x + k0 + t)), absmask));
            uint32_t lanes[16], mb = 0;
            _mm512_storeu_si512((void *)lanes, mv);
            for (int l = 0; l < 16; l++) mb = lanes[l] > mb ? lanes[l] : mb;
            float inv, s = qv_i16_scale(mb, qmax, &inv);
            bad |= s != s;
            sx[(size_t)i * nkb + b] = s;
            const __m512 iv = _mm512_set1_ps(inv);
            for (int t = 0; t < n; t += 16) {
                __mmask16 mk = mask16(n - t);
                _mm512_mask_cvtepi32_storeu_epi16(qi + k0 + t, mk, _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + k0 + t), iv)));
            }
        }
        for (int t = k; t < ldq; t++) qi[t] = 0;
    }
    return bad ? -1 : 0;
}

static int i16_quant_x(int16_t *q, int ldq, float *sx, int nkb, const float *X, int ldx, int m, int k) {
    return i16_quant_rows(q, ldq, sx, nkb, X, ldx, m, k, (float)QV_I16_QX);
}

/* 16 x 16 int32 transpose in registers: r[i] lane j -> r[j] lane i (unpack 32, unpack 64, two rounds of
 * 128-bit lane shuffles) */
AI void transpose16_epi32(__m512i r[16]) {
    __m512i t[16], u[16], w[16];
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    for (int m = 0; m < 4; m++) {   /* u[4m + c] lane L: column 4L + c, rows 4m .. 4m+3 */
        u[4 * m + 0] = _mm512_unpacklo_epi64(t[4 * m], t[4 * m + 2]);
        u[4 * m + 1] = _mm512_unpackhi_epi64(t[4 * m], t[4 * m + 2]);
        u[4 * m + 2] = _mm512_unpacklo_epi64(t[4 * m + 1], t[4 * m + 3]);
        u[4 * m + 3] = _mm512_unpackhi_epi64(t[4 * m + 1], t[4 * m + 3]);
    }
    for (int c = 0; c < 4; c++) {
        w[4 * c + 0] = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);
        w[4 * c + 1] = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
        w[4 * c + 2] = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
        w[4 * c + 3] = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm512_shuffle_i32x4(w[4 * c + 0], w[4 * c + 2], 0x88);
        r[8 + c] = _mm512_shuffle_i32x4(w[4 * c + 0], w[4 * c + 2], 0xdd);
        r[4 + c] = _mm512_shuffle_i32x4(w[4 * c + 1], w[4 * c + 3], 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(w[4 * c + 1], w[4 * c + 3], 0xdd);
    }
}

/* 16 rows of W (bf16, stride ldw; rows past `rows` zero) x columns [0, kc) -> one panel bp ([kc/2 rounded
 * up][16 rows][2] int16) and the rows' block scales bs[16]. Per row and 32 columns: one masked load (nothing
 * past the row is read), the even and odd columns widened in place (<< 16, & 0xffff0000), quantized and
 * packed as pair words; a 16 x 16 transpose then gives the panel's rows of pairs. */
static void i16_pack(int16_t *bp, float *bs, const uint16_t *W, size_t ldw, int rows, int kc) {
    const __m512i abs2 = _mm512_set1_epi32(0x7fff7fff);
    float inv[16];
    for (int r = 0; r < 16; r++) {   /* each row's largest |w| of the block */
        if (r >= rows) { bs[r] = inv[r] = 0.0f; continue; }
        __m512i mx = _mm512_setzero_si512();
        for (int t = 0; t < kc; t += 32)
            mx = _mm512_max_epu16(mx, _mm512_and_si512(_mm512_maskz_loadu_epi16(mask32(kc - t), W + (size_t)r * ldw + t), abs2));
        uint16_t lanes[32], m = 0;
        _mm512_storeu_si512((void *)lanes, mx);
        for (int l = 0; l < 32; l++) m = lanes[l] > m ? lanes[l] : m;
        bs[r] = qv_i16_scale((uint32_t)m << 16, (float)QV_I16_QW, &inv[r]);
    }
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u), lo = _mm512_set1_epi32(0xffff);
    const int np = (kc + 1) / 2;
    for (int t = 0; t < kc; t += 32) {
        __m512i v[16];
        const __mmask32 km = mask32(kc - t);
        for (int r = 0; r < 16; r++) {
            if (r >= rows) { v[r] = _mm512_setzero_si512(); continue; }
            __m512i w = _mm512_maskz_loadu_epi16(km, W + (size_t)r * ldw + t);
            __m512 iv = _mm512_set1_ps(inv[r]);
            __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(w, 16)), iv));
            __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_castsi512_ps(_mm512_and_si512(w, hi)), iv));
            v[r] = _mm512_or_si512(_mm512_and_si512(q0, lo), _mm512_slli_epi32(q1, 16));
        }
        transpose16_epi32(v);
        const int npc = np - t / 2 < 16 ? np - t / 2 : 16;
        for (int p = 0; p < npc; p++) _mm512_storeu_si512((void *)(bp + (size_t)(t / 2 + p) * 32), v[p]);
    }
}

/* The same panel from 16 rows of f32 values T [16][QV_I16_KB] (rows_f32 of a non-bf16 W; rows past `rows`
 * ignored): the rows quantized as X's are (i16_quant_rows at QV_I16_QW, zero padded to QV_I16_KB), whose
 * 32-value loads are 16 pair words each, transposed as in i16_pack. */
static void i16_pack_f32(int16_t *bp, float *bs, const float (*T)[QV_I16_KB], int rows, int kc) {
    int16_t Q[16][QV_I16_KB] __attribute__((aligned(64)));
    (void)i16_quant_rows(Q[0], QV_I16_KB, bs, 1, T[0], QV_I16_KB, rows, kc, (float)QV_I16_QW);
    for (int r = rows; r < 16; r++) {
        bs[r] = 0.0f;
        memset(Q[r], 0, sizeof Q[r]);
    }
    const int np = (kc + 1) / 2;
    for (int t = 0; t < kc; t += 32) {
        __m512i v[16];
        for (int r = 0; r < 16; r++) v[r] = _mm512_loadu_si512((const void *)(Q[r] + t));
        transpose16_epi32(v);
        const int npc = np - t / 2 < 16 ? np - t / 2 : 16;
        for (int p = 0; p < npc; p++) _mm512_storeu_si512((void *)(bp + (size_t)(t / 2 + p) * 32), v[p]);
    }
}

/* acc[i][0..32) += one block's dequantized product, rows i < mr of x against one (two = 0) or two 16-row
 * panels (scales bs0, bs1): fma(float(c), sx * sw, acc) per element, the scalar definition's step */
AI void uk_i16(float (*acc)[32], const int16_t *x, int ldx, const float *sx, int ldsx, const int16_t *bp,
               size_t pstride, const float *bs0, const float *bs1, int kc, const int mr, const int two) {
    __m512i c[G_MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) c[i][0] = c[i][1] = _mm512_setzero_si512();
    const int np = (kc + 1) / 2;   /* an odd kc reads x's zero padding (or next column) times a zero weight */
    int p = 0;
#if defined(__GNUC__) && defined(__x86_64__) && !defined(QV_AVX512_EMU_H)
    if (mr == G_MR && two && np > 0) {
        /* GCC moves the accumulators between registers around every vpdpwssd of the intrinsics loop below
         * (~2x slower): written out, 16 accumulators in zmm0-15, the panels' pair row in zmm16-17, each X
         * pair broadcast once into zmm18 for both */
        const int16_t *x0 = x, *x4 = x + (size_t)4 * ldx;
        const int16_t *w = bp;
        long ldb = (long)ldx * 2, ldb3 = 3 * ldb, ps = (long)pstride * 2, cnt = np;
#define QV_VNNI_ROW(addr, c0, c1) \
        "vpbroadcastd " addr ", %%zmm18\n\t" \
        "vpdpwssd %%zmm18, %%zmm16, %%zmm" c0 "\n\t" \
        "vpdpwssd %%zmm18, %%zmm17, %%zmm" c1 "\n\t"
        __asm__ volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n\tvpxord %%zmm1, %%zmm1, %%zmm1\n\t"
                         "vpxord %%zmm2, %%zmm2, %%zmm2\n\tvpxord %%zmm3, %%zmm3, %%zmm3\n\t"
                         "vpxord %%zmm4, %%zmm4, %%zmm4\n\tvpxord %%zmm5, %%zmm5, %%zmm5\n\t"
                         "vpxord %%zmm6, %%zmm6, %%zmm6\n\tvpxord %%zmm7, %%zmm7, %%zmm7\n\t"
                         "vpxord %%zmm8, %%zmm8, %%zmm8\n\tvpxord %%zmm9, %%zmm9, %%zmm9\n\t"
                         "vpxord %%zmm10, %%zmm10, %%zmm10\n\tvpxord %%zmm11, %%zmm11, %%zmm11\n\t"
                         "vpxord %%zmm12, %%zmm12, %%zmm12\n\tvpxord %%zmm13, %%zmm13, %%zmm13\n\t"
                         "vpxord %%zmm14, %%zmm14, %%zmm14\n\tvpxord %%zmm15, %%zmm15, %%zmm15\n\t"
                         "1:\n\t"
                         "vmovdqu64 (%[w]), %%zmm16\n\t"
                         "vmovdqu64 (%[w],%[ps],1), %%zmm17\n\t"
                         QV_VNNI_ROW("(%[x0])", "0", "1")
                         QV_VNNI_ROW("(%[x0],%[ldb],1)", "2", "3")
                         QV_VNNI_ROW("(%[x0],%[ldb],2)", "4", "5")
                         QV_VNNI_ROW("(%[x0],%[ldb3],1)", "6", "7")
                         QV_VNNI_ROW("(%[x4])", "8", "9")
                         QV_VNNI_ROW("(%[x4],%[ldb],1)", "10", "11")
                         QV_VNNI_ROW("(%[x4],%[ldb],2)", "12", "13")
                         QV_VNNI_ROW("(%[x4],%[ldb3],1)", "14", "15")
                         "addq $64, %[w]\n\t"
                         "addq $4, %[x0]\n\t"
                         "addq $4, %[x4]\n\t"
                         "decq %[cnt]\n\t"
                         "jnz 1b\n\t"
                         "vmovdqu64 %%zmm0, (%[c])\n\tvmovdqu64 %%zmm1, 64(%[c])\n\t"
                         "vmovdqu64 %%zmm2, 128(%[c])\n\tvmovdqu64 %%zmm3, 192(%[c])\n\t"
                         "vmovdqu64 %%zmm4, 256(%[c])\n\tvmovdqu64 %%zmm5, 320(%[c])\n\t"
                         "vmovdqu64 %%zmm6, 384(%[c])\n\tvmovdqu64 %%zmm7, 448(%[c])\n\t"
                         "vmovdqu64 %%zmm8, 512(%[c])\n\tvmovdqu64 %%zmm9, 576(%[c])\n\t"
                         "vmovdqu64 %%zmm10, 640(%[c])\n\tvmovdqu64 %%zmm11, 704(%[c])\n\t"
                         "vmovdqu64 %%zmm12, 768(%[c])\n\tvmovdqu64 %%zmm13, 832(%[c])\n\t"
                         "vmovdqu64 %%zmm14, 896(%[c])\n\tvmovdqu64 %%zmm15, 960(%[c])"
                         : [w] "+r"(w), [x0] "+r"(x0), [x4] "+r"(x4), [cnt] "+r"(cnt)
                         : [ldb] "r"(ldb), [ldb3] "r"(ldb3), [ps] "r"(ps), [c] "r"(&c[0][0])
                         : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                           "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18");
#undef QV_VNNI_ROW
        p = np;
    }
#endif
    for (; p < np; p++) {
        __m512i w0 = _mm512_loadu_si512((const void *)(bp + (size_t)p * 32));
        __m512i w1 = two ? _mm512_loadu_si512((const void *)(bp + pstride + (size_t)p * 32)) : w0;
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            int32_t xv;
            memcpy(&xv, x + (size_t)i * ldx + 2 * p, 4);
            __m512i xb = _mm512_set1_epi32(xv);
            c[i][0] = _mm512_dpwssd_epi32(c[i][0], xb, w0);
            if (two) c[i][1] = _mm512_dpwssd_epi32(c[i][1], xb, w1);
        }
    }
    const __m512 s0 = _mm512_loadu_ps(bs0), s1 = two ? _mm512_loadu_ps(bs1) : s0;
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        const __m512 f = _mm512_set1_ps(sx[(size_t)i * ldsx]);
        _mm512_store_ps(acc[i], _mm512_fmadd_ps(_mm512_cvtepi32_ps(c[i][0]), _mm512_mul_ps(f, s0), _mm512_load_ps(acc[i])));
        if (two)
            _mm512_store_ps(acc[i] + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(c[i][1]), _mm512_mul_ps(f, s1), _mm512_load_ps(acc[i] + 16)));
    }
}

enum { GI_KC = 512, GI_NBLK = GI_KC / QV_I16_KB };   /* k per packed chunk: 4 blocks */

/* Y[i][0..nr) for rows i < mr over one k chunk (nblk blocks of QV_I16_KB, the last kc_last wide): the sums
 * stay in an L1 tile across the chunk's blocks (Y rows are ldy apart: reading and writing them per block
 * cost a quarter of the product), starting from the bias (first chunk) or Y */
static void uk_i16_chunk(float *Y, int ldy, const int16_t *x, int ldx, const float *sx, int ldsx, const int16_t *bp,
                         const float *bs, int nblk, int kc_last, int mr, int nr, const uint16_t *bias, int first) {
    float acc[G_MR][32] __attribute__((aligned(64)));
    const __mmask16 m0 = mask16(nr), m1 = mask16(nr - 16 > 0 ? nr - 16 : 0);
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (first && bias) {
        b0 = load16_bf16_mask(bias, nr);
        if (nr > 16) b1 = load16_bf16_mask(bias + 16, nr - 16);
    }
    for (int i = 0; i < mr; i++) {
        const float *y = Y + (size_t)i * ldy;
        _mm512_store_ps(acc[i], first ? b0 : _mm512_maskz_loadu_ps(m0, y));
        _mm512_store_ps(acc[i] + 16, first ? b1 : _mm512_maskz_loadu_ps(m1, y + 16));
    }
    const size_t pstride = (size_t)16 * GI_KC;   /* the second panel; a block is 64 pairs x 32 int16 on */
    for (int b = 0; b < nblk; b++) {
        const int kc = b == nblk - 1 ? kc_last : QV_I16_KB;
        const int16_t *xb = x + (size_t)b * QV_I16_KB, *pb = bp + (size_t)b * 16 * QV_I16_KB;
        const float *s0 = bs + (size_t)b * 16, *s1 = s0 + GI_NBLK * 16;
#define UK_I16(r)                                                                                  \
    case r:                                                                                        \
        if (nr > 16) uk_i16(acc, xb, ldx, sx + b, ldsx, pb, pstride, s0, s1, kc, r, 1);            \
        else uk_i16(acc, xb, ldx, sx + b, ldsx, pb, pstride, s0, s1, kc, r, 0);                    \
        break;
        switch (mr) {
        UK_I16(8) UK_I16(7) UK_I16(6) UK_I16(5) UK_I16(4) UK_I16(3) UK_I16(2)
        default: UK_I16(1)
        }
#undef UK_I16
    }
    for (int i = 0; i < mr; i++) {
        float *y = Y + (size_t)i * ldy;
        _mm512_mask_storeu_ps(y, m0, _mm512_load_ps(acc[i]));
        if (nr > 16) _mm512_mask_storeu_ps(y + 16, m1, _mm512_load_ps(acc[i] + 16));
    }
}

/* scratch: [GI_NB / 16] panels of [GI_NBLK blocks][QV_I16_KB / 2][16][2] int16, then the scales
 * [GI_NB / 16][GI_NBLK][16] */
static void gemm_i16(float *Y, int ldy, const int16_t *X, int ldx, const float *sx, int nkb, const qv_wsrc *W,
                     const uint16_t *bias, int m, int n, int k, void *scratch) {
    float T[16][QV_I16_KB] __attribute__((aligned(64)));
    int16_t *bp = scratch;
    float *bs = (float *)(bp + (size_t)GI_NB * GI_KC);
    const size_t panel = (size_t)16 * GI_KC;
    for (int j0 = 0; j0 < n; j0 += GI_NB) {
        int nb = n - j0 < GI_NB ? n - j0 : GI_NB;
        for (int c0 = 0; c0 < nkb; c0 += GI_NBLK) {   /* chunks of GI_NBLK blocks */
            const int nblk = nkb - c0 < GI_NBLK ? nkb - c0 : GI_NBLK, k0 = c0 * QV_I16_KB;
            const int kc_last = k - (c0 + nblk - 1) * QV_I16_KB < QV_I16_KB ? k - (c0 + nblk - 1) * QV_I16_KB : QV_I16_KB;
            for (int p = 0; p < nb; p += 16)
                for (int b = 0; b < nblk; b++) {
                    int16_t *pp = bp + (size_t)(p / 16) * panel + (size_t)b * 16 * QV_I16_KB;
                    float *ps = bs + ((size_t)(p / 16) * GI_NBLK + b) * 16;
                    const int rows = nb - p < 16 ? nb - p : 16, kc = b == nblk - 1 ? kc_last : QV_I16_KB;
                    const int kb = k0 + b * QV_I16_KB;
                    if (W->bf16) {
                        i16_pack(pp, ps, W->bf16 + (size_t)(W->row0 + j0 + p) * W->ldw + kb, W->ldw, rows, kc);
                    } else {
                        W->rows_f32(W, T[0], QV_I16_KB, W->row0 + j0 + p, rows, kb, kc);
                        i16_pack_f32(pp, ps, (const float (*)[QV_I16_KB])T, rows, kc);
                    }
                }
            for (int i0 = 0; i0 < m; i0 += G_MR) {
                int mr = m - i0 < G_MR ? m - i0 : G_MR;
                for (int p = 0; p < nb; p += 32)
                    uk_i16_chunk(Y + (size_t)i0 * ldy + j0 + p, ldy, X + (size_t)i0 * ldx + k0, ldx, sx + (size_t)i0 * nkb + c0,
                                 nkb, bp + (size_t)(p / 16) * panel, bs + (size_t)(p / 16) * GI_NBLK * 16, nblk, kc_last, mr,
                                 nb - p < 32 ? nb - p : 32, bias ? bias + j0 + p : NULL, c0 == 0);
            }
        }
    }
}

static const qv_ktable k_avx512 = {
    .name = "avx512bf16",
    .kblock = 32,
    .kc = 2048,
    .mr = MR,
    .nr = NR,
    .xbf16 = {0, 1},
    .xprep = {xprep_ref, xprep_fast},
    .tile = {tile_ref, tile_fast},
    .gemv = {NULL, gemv_fast},
    .gemm = {gemm_ref, gemm_fast},
    .gemm_xbf16 = {0, 1},
    .gemm_scratch = (size_t)G_NB * (G_KC / 2) * sizeof(uint32_t),
    .xquant_i16 = i16_quant_x,
    .gemm_i16 = gemm_i16,
    .gemm_i16_scratch = (size_t)GI_NB * GI_KC * sizeof(int16_t) + (size_t)GI_NB * GI_NBLK * sizeof(float) + 64,
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
    .elt = &qv_elt_v16,
    .q8 = qv_q8_table_avx512,
};

const qv_ktable *qv_ktable_avx512(void) { return &k_avx512; }

#else
const qv_ktable *qv_ktable_avx512(void) { return NULL; }
#endif
