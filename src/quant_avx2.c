/* quant_avx2.c — AVX2 + FMA versions of the 8-bit kernels (quant.h; compiled with -mavx2 -mfma -mf16c,
 * chosen at run time by quant.c only when the CPU has them). The scalar reference in quant.c is the spec:
 * quantization is bit-identical (same f32 operations, round to nearest even), dot products are the same
 * integer sums per block, accumulated in 8 float lanes instead of one.
 *
 * Per block of 32 (llama.cpp's AVX2 q8_0 dot): maddubs wants one unsigned operand, so
 *   ax = sign(x, x) = |x|,  sw = sign(w, x) = w * sgn(x),  maddubs(ax, sw) = 16 sums of 2 products x*w
 * (|x|,|w| <= 127: at most 32258, no int16 saturation), madd with ones -> 8 int32, cvt, then
 * acc += (dx * dw) * that with one FMA. Tiles: 4 rows of X x 2 rows of W (8 accumulators) for small m, so
 * each loaded weight block is used by every X row in the tile; decode (m = 1) streams one row at a time. */
#include "quant.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "gemm_avx2.h"

#define AI static inline __attribute__((always_inline))

AI float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* one block of 32 floats -> 32 int8 + scale, the reference's math (amax / 127, 1 / d, x * id, RNE) */
AI void quant_block(int8_t *q, float *d, __m256 v0, __m256 v1, __m256 v2, __m256 v3) {
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sgn, v0), _mm256_andnot_ps(sgn, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sgn, v2), _mm256_andnot_ps(sgn, v3)));
    float amax = hmax(m);
    float s = amax / 127.0f, id = s != 0.0f ? 1.0f / s : 0.0f;
    *d = s;
    const __m256 vid = _mm256_set1_ps(id), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    /* min_ps(v, 127) gives 127 for NaN, as fminf does in the reference */
#define QC(v) _mm256_cvtps_epi32(_mm256_round_ps(_mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(v, vid), hi), lo), \
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
    __m256i i0 = QC(v0), i1 = QC(v1), i2 = QC(v2), i3 = QC(v3);
#undef QC
    __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p);
}

static void quant_f32(int8_t *q, float *d, const float *x, int k) {
    for (int b = 0; b < k / 32; b++) {
        const float *p = x + b * 32;
        quant_block(q + b * 32, d + b, _mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _mm256_loadu_ps(p + 16),
                    _mm256_loadu_ps(p + 24));
    }
}

AI __m256 widen8(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }

static int quant_bf16(int8_t *q, float *d, const uint16_t *w, int k) {
    const __m256i em = _mm256_set1_epi16(0x7f80);
    __m256i bad = _mm256_setzero_si256();
    for (int b = 0; b < k / 32; b++) {
        __m256i h0 = _mm256_loadu_si256((const __m256i *)(w + b * 32));
        __m256i h1 = _mm256_loadu_si256((const __m256i *)(w + b * 32 + 16));
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi16(_mm256_and_si256(h0, em), em));
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi16(_mm256_and_si256(h1, em), em));
        quant_block(q + b * 32, d + b, widen8(_mm256_castsi256_si128(h0)), widen8(_mm256_extracti128_si256(h0, 1)),
                    widen8(_mm256_castsi256_si128(h1)), widen8(_mm256_extracti128_si256(h1, 1)));
    }
    return _mm256_testz_si256(bad, bad);
}

/* Y[i][j] = bias[j] + x_i . w_j for i < M, j < N (M, N compile-time after inlining) */
AI void kern(float *Y, int ldy, const int8_t *xq, const float *xd, const int8_t *wq, const float *wd, int k,
             const float *bias, const int M, const int N) {
    const int nb = k / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < M; i++)
#pragma GCC unroll 4
        for (int j = 0; j < N; j++) acc[i][j] = _mm256_setzero_ps();
    /* scale products dx * dw for 8 blocks at a time, vector multiplies into a small buffer: each block then
     * broadcasts its scale from memory (a load, no shuffle or scalar multiply per pair) */
    float sc[4][4][8] __attribute__((aligned(32)));
    for (int b0 = 0; b0 < nb; b0 += 8) {
        const int bn = nb - b0 < 8 ? nb - b0 : 8;
        if (bn == 8) {
#pragma GCC unroll 4
            for (int i = 0; i < M; i++) {
                __m256 vx = _mm256_loadu_ps(xd + (size_t)i * nb + b0);
#pragma GCC unroll 4
                for (int j = 0; j < N; j++)
                    _mm256_store_ps(sc[i][j], _mm256_mul_ps(vx, _mm256_loadu_ps(wd + (size_t)j * nb + b0)));
            }
        } else {
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++)
                    for (int t = 0; t < bn; t++) sc[i][j][t] = xd[(size_t)i * nb + b0 + t] * wd[(size_t)j * nb + b0 + t];
        }
        for (int t = 0; t < bn; t++) {
            const int b = b0 + t;
            __m256i w[4];
#pragma GCC unroll 4
            for (int j = 0; j < N; j++) {
                w[j] = _mm256_loadu_si256((const __m256i *)(wq + (size_t)j * k + b * 32));
                if (M == 1) _mm_prefetch((const char *)(wq + (size_t)j * k + b * 32) + 1024, _MM_HINT_T0);
            }
#pragma GCC unroll 4
            for (int i = 0; i < M; i++) {
                __m256i x = _mm256_loadu_si256((const __m256i *)(xq + (size_t)i * k + b * 32));
                __m256i ax = _mm256_sign_epi8(x, x);
#pragma GCC unroll 4
                for (int j = 0; j < N; j++) {
                    __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(w[j], x)), ones);
                    acc[i][j] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[i][j][t]), _mm256_cvtepi32_ps(p), acc[i][j]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < M; i++)
#pragma GCC unroll 4
        for (int j = 0; j < N; j++) Y[(size_t)i * ldy + j] = (bias ? bias[j] : 0.0f) + hsum(acc[i][j]);
}

static void tile(float *Y, int ldy, const int8_t *xq, const float *xd, int mr, const int8_t *wq, const float *wd,
                 int nr, int k, const float *bias) {
    const int nb = k / 32;
    if (mr == 1) {   /* decode: one row after the other, one sequential stream (19 GB/s vs 15 with 4 rows
                        interleaved, whose streams restart every row on the 7B's 3.5 KiB rows) */
        for (int j = 0; j < nr; j++)
            kern(Y + j, ldy, xq, xd, wq + (size_t)j * k, wd + (size_t)j * nb, k, bias ? bias + j : NULL, 1, 1);
        return;
    }
    for (int j = 0; j < nr; j += 2) {
        float *y = Y + j;
        const int8_t *w = wq + (size_t)j * k;
        const float *d = wd + (size_t)j * nb, *bb = bias ? bias + j : NULL;
        if (nr - j >= 2) {
            switch (mr) {
            case 4: kern(y, ldy, xq, xd, w, d, k, bb, 4, 2); break;
            case 3: kern(y, ldy, xq, xd, w, d, k, bb, 3, 2); break;
            default: kern(y, ldy, xq, xd, w, d, k, bb, 2, 2); break;
            }
        } else {
            switch (mr) {
            case 4: kern(y, ldy, xq, xd, w, d, k, bb, 4, 1); break;
            case 3: kern(y, ldy, xq, xd, w, d, k, bb, 3, 1); break;
            default: kern(y, ldy, xq, xd, w, d, k, bb, 2, 1); break;
            }
        }
    }
}

static void dequant(float *dst, const int8_t *q, const float *d, int k) {
    for (int b = 0; b < k / 32; b++) {
        const __m256 s = _mm256_set1_ps(d[b]);
        for (int t = 0; t < 32; t += 8) {
            __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + b * 32 + t)));
            _mm256_storeu_ps(dst + b * 32 + t, _mm256_mul_ps(s, _mm256_cvtepi32_ps(v)));
        }
    }
}

/* ---- prefill: f32 GEMM on dequantized values (BLIS-style, as kernels_avx2.c does for bf16) ----
 * W rows are dequantized and packed 16 at a time, k-major ([kc][16], rows past n zero), GB_NB rows x GB_KC
 * columns per block (L2); 6 rows of X broadcast one k at a time against two 8-wide W vectors. */


/* bp[t][16] = d * q of row r, column k0 + t (zero for rows >= rows); kc and k0 multiples of 32 */
static void pack_q8(float *bp, const int8_t *wq, const float *wd, int k, int rows, int k0, int kc) {
    for (int t = 0; t < kc; t += 8)
        for (int h = 0; h < 2; h++) {
            __m256 r[8];
            for (int q = 0; q < 8; q++) {
                int row = h * 8 + q;
                if (row < rows) {
                    size_t o = (size_t)row * k + k0 + t;
                    __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(wq + o)));
                    r[q] = _mm256_mul_ps(_mm256_set1_ps(wd[o / 32]), _mm256_cvtepi32_ps(v));
                } else {
                    r[q] = _mm256_setzero_ps();
                }
            }
            transpose8(r);
            for (int q = 0; q < 8; q++) _mm256_store_ps(bp + (size_t)(t + q) * 16 + h * 8, r[q]);
        }
}

typedef struct { const int8_t *wq; const float *wd; int k; } q8_pack_ctx;

static void pack_q8_cb(const void *ctx, float *bp, int j, int rows, int k0, int kc) {
    const q8_pack_ctx *c = ctx;
    pack_q8(bp, c->wq + (size_t)j * c->k, c->wd + (size_t)j * (c->k / 32), c->k, rows, k0, kc);
}

static void gemm(float *Y, int ldy, const float *X, int m, const int8_t *wq, const float *wd, int n, int k,
                 void *scratch) {
    q8_pack_ctx c = {wq, wd, k};
    gemm_blocked(Y, ldy, X, k, pack_q8_cb, &c, NULL, m, n, k, scratch);
}

static const qv_q8_table q_avx2 = {"avx2", quant_bf16, quant_f32, tile, dequant, gemm,
                                   (size_t)GB_NB * GB_KC * sizeof(float)};

const qv_q8_table *qv_q8_table_avx2(void) { return &q_avx2; }

#else
const qv_q8_table *qv_q8_table_avx2(void) { return NULL; }
#endif
