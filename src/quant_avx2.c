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
#include "tensor.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define AI static inline __attribute__((always_inline))
/* software prefetch distance of the decode's weight stream, bytes */
enum { QPF = 1024 };

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

/* one block of 32 floats -> 32 int8 + scale, the reference's math (amax / 127 -- for weights (dh) rounded up
 * to a half, qv_q8_half_scale --, 1 / d, x * id, RNE); returns 0 when a weight scale is past the half range */
AI int quant_block(int8_t *q, float *d, uint16_t *dh, __m256 v0, __m256 v1, __m256 v2, __m256 v3) {
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sgn, v0), _mm256_andnot_ps(sgn, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sgn, v2), _mm256_andnot_ps(sgn, v3)));
    float amax = hmax(m);
    float s = amax / 127.0f;
    if (dh) {
        *dh = qv_q8_half_scale(amax);
        if ((*dh & 0x7c00) == 0x7c00) return 0;
        s = _cvtsh_ss(*dh);
    } else {
        *d = s;
    }
    const float id = s != 0.0f ? 1.0f / s : 0.0f;
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
    return 1;
}

static void quant_f32(int8_t *q, float *d, const float *x, int k) {
    for (int b = 0; b < k / 32; b++) {
        const float *p = x + b * 32;
        quant_block(q + b * 32, d + b, NULL, _mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _mm256_loadu_ps(p + 16),
                    _mm256_loadu_ps(p + 24));
    }
}

AI __m256 widen8(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }

static int quant_bf16(int8_t *q, uint16_t *d, const uint16_t *w, int k) {
    const __m256i em = _mm256_set1_epi16(0x7f80);
    __m256i bad = _mm256_setzero_si256();
    for (int b = 0; b < k / 32; b++) {
        __m256i h0 = _mm256_loadu_si256((const __m256i *)(w + b * 32));
        __m256i h1 = _mm256_loadu_si256((const __m256i *)(w + b * 32 + 16));
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi16(_mm256_and_si256(h0, em), em));
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi16(_mm256_and_si256(h1, em), em));
        if (!quant_block(q + b * 32, NULL, d + b, widen8(_mm256_castsi256_si128(h0)), widen8(_mm256_extracti128_si256(h0, 1)),
                         widen8(_mm256_castsi256_si128(h1)), widen8(_mm256_extracti128_si256(h1, 1))))
            return 0;
    }
    return _mm256_testz_si256(bad, bad);
}

/* 32 4-bit weights of one block (quant.h) -> 32 int8 in [-8, 7]: low nibbles then high nibbles */
AI __m256i nib32(const uint8_t *p) {
    __m128i t = _mm_loadu_si128((const __m128i *)p);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(15)), _mm256_set1_epi8(8));
}

/* Y[i][j] = bias[j] + x_i . w_j for i < M, j < N (M, N, Q4 compile-time after inlining); W 8-bit (wq int8,
 * wd half) or, Q4, 4-bit (wq nibbles [k/2] per row, wd half) */
AI void kern(float *Y, int ldy, const int8_t *xq, const float *xd, const void *wqv, const void *wdv, int k,
             const float *bias, const int M, const int N, const int Q4) {
    const int nb = k / 32;
    const int8_t *wq = wqv;
    const uint8_t *wq4 = wqv;
    const uint16_t *wd4 = wdv;   /* half scales (both formats) */
    const size_t ldq = Q4 ? (size_t)k / 2 : (size_t)k;
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
                    _mm256_store_ps(sc[i][j], _mm256_mul_ps(vx, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wd4 + (size_t)j * nb + b0)))));
            }
        } else {
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++)
                    for (int t = 0; t < bn; t++)
                        sc[i][j][t] = xd[(size_t)i * nb + b0 + t] * _cvtsh_ss(wd4[(size_t)j * nb + b0 + t]);
        }
        for (int t = 0; t < bn; t++) {
            const int b = b0 + t;
            __m256i w[4];
#pragma GCC unroll 4
            for (int j = 0; j < N; j++) {
                const char *wp = Q4 ? (const char *)(wq4 + (size_t)j * ldq + b * 16) : (const char *)(wq + (size_t)j * ldq + b * 32);
                w[j] = Q4 ? nib32((const uint8_t *)wp) : _mm256_loadu_si256((const __m256i *)wp);
                if (M == 1) _mm_prefetch(wp + QPF, _MM_HINT_T0);
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

AI void tile_any(float *Y, int ldy, const int8_t *xq, const float *xd, int mr, const void *wq, const void *wd,
                 int nr, int k, const float *bias, const int Q4) {
    const int nb = k / 32;
    const size_t wrow = Q4 ? (size_t)k / 2 : (size_t)k, drow = (size_t)nb * 2;
    if (mr == 1) {   /* decode: one row after the other, one sequential stream (19 GB/s vs 15 with 4 rows
                        interleaved, whose streams restart every row on the 7B's 3.5 KiB rows) */
        for (int j = 0; j < nr; j++)
            kern(Y + j, ldy, xq, xd, (const char *)wq + j * wrow, (const char *)wd + j * drow, k, bias ? bias + j : NULL, 1, 1, Q4);
        return;
    }
    for (int j = 0; j < nr; j += 2) {
        float *y = Y + j;
        const void *w = (const char *)wq + j * wrow, *d = (const char *)wd + j * drow;
        const float *bb = bias ? bias + j : NULL;
        if (nr - j >= 2) {
            switch (mr) {
            case 4: kern(y, ldy, xq, xd, w, d, k, bb, 4, 2, Q4); break;
            case 3: kern(y, ldy, xq, xd, w, d, k, bb, 3, 2, Q4); break;
            default: kern(y, ldy, xq, xd, w, d, k, bb, 2, 2, Q4); break;
            }
        } else {
            switch (mr) {
            case 4: kern(y, ldy, xq, xd, w, d, k, bb, 4, 1, Q4); break;
            case 3: kern(y, ldy, xq, xd, w, d, k, bb, 3, 1, Q4); break;
            default: kern(y, ldy, xq, xd, w, d, k, bb, 2, 1, Q4); break;
            }
        }
    }
}

static void tile(float *Y, int ldy, const int8_t *xq, const float *xd, int mr, const int8_t *wq, const uint16_t *wd,
                 int nr, int k, const float *bias) {
    tile_any(Y, ldy, xq, xd, mr, wq, wd, nr, k, bias, 0);
}

static void tile4(float *Y, int ldy, const int8_t *xq, const float *xd, int mr, const uint8_t *wq, const uint16_t *wd,
                  int nr, int k, const float *bias) {
    tile_any(Y, ldy, xq, xd, mr, wq, wd, nr, k, bias, 1);
}

static void dequant(float *dst, const int8_t *q, const uint16_t *d, int k) {
    for (int b = 0; b < k / 32; b++) {
        const __m256 s = _mm256_set1_ps(_cvtsh_ss(d[b]));
        for (int t = 0; t < 32; t += 8) {
            __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + b * 32 + t)));
            _mm256_storeu_ps(dst + b * 32 + t, _mm256_mul_ps(s, _mm256_cvtepi32_ps(v)));
        }
    }
}

/* 4-bit rows: each block's nibbles widened (nib32) and scaled by its half scale (F16C) */
static void dequant4(float *dst, const uint8_t *q, const uint16_t *d, int k) {
    for (int b = 0; b < k / 32; b++) {
        const __m256 s = _mm256_set1_ps(_cvtsh_ss(d[b]));
        __m256i v = nib32(q + b * 16);
        for (int t = 0; t < 4; t++) {
            __m128i h = t < 2 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1);
            __m256i w = _mm256_cvtepi8_epi32(t % 2 ? _mm_srli_si128(h, 8) : h);
            _mm256_storeu_ps(dst + b * 32 + t * 8, _mm256_mul_ps(s, _mm256_cvtepi32_ps(w)));
        }
    }
}

/* Decode with 4-bit weights (quant.h gemv4): per block the unsigned nibbles (0..15) times x with maddubs (at
 * most 2 * 15 * 127 per pair), madd to 8 int32, plus xs (-8 * the lanes' x sums): the integer sum of x (q - 8).
 * Two accumulators, so consecutive blocks' FMAs do not wait on each other. */
static void gemv4(float *Y, const int8_t *xp, const int32_t *xs, const float *xd, const uint8_t *wq, const uint16_t *wd,
                  int nr, int k, const float *bias) {
    const int nb = k / 32;
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(15);
    float sc[8] __attribute__((aligned(32)));
    for (int j = 0; j < nr; j++) {
        const uint8_t *w = wq + (size_t)j * (k / 2);
        const uint16_t *d = wd + (size_t)j * nb;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        for (int b0 = 0; b0 < nb; b0 += 8) {
            const int bn = nb - b0 < 8 ? nb - b0 : 8;
            if (bn == 8)
                _mm256_store_ps(sc, _mm256_mul_ps(_mm256_loadu_ps(xd + b0), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + b0)))));
            else
                for (int t = 0; t < bn; t++) sc[t] = xd[b0 + t] * _cvtsh_ss(d[b0 + t]);
            _mm_prefetch((const char *)(w + b0 * 16) + QPF, _MM_HINT_T0);
            _mm_prefetch((const char *)(w + b0 * 16) + QPF + 64, _MM_HINT_T0);
#define Q4_BLOCK(t, a)                                                                                                      \
    do {                                                                                                                   \
        const int b = b0 + (t);                                                                                            \
        __m128i h = _mm_loadu_si128((const __m128i *)(w + b * 16));                                                        \
        __m256i nib = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(h), _mm_srli_epi16(h, 4), 1), m4);   \
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(nib, _mm256_loadu_si256((const __m256i *)(xp + b * 32))), ones); \
        p = _mm256_add_epi32(p, _mm256_loadu_si256((const __m256i *)(xs + b * 8)));                                        \
        a = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[t]), _mm256_cvtepi32_ps(p), a);                                        \
    } while (0)
            int t = 0;
            for (; t + 2 <= bn; t += 2) {
                Q4_BLOCK(t, acc0);
                Q4_BLOCK(t + 1, acc1);
            }
            if (t < bn) Q4_BLOCK(t, acc0);
#undef Q4_BLOCK
        }
        Y[j] = (bias ? bias[j] : 0.0f) + hsum(_mm256_add_ps(acc0, acc1));
    }
}

static const qv_q8_table q_avx2 = {"avx2", quant_bf16, quant_f32, tile, dequant, tile4, dequant4, gemv4, 0};

const qv_q8_table *qv_q8_table_avx2(void) { return &q_avx2; }

#else
const qv_q8_table *qv_q8_table_avx2(void) { return NULL; }
#endif
