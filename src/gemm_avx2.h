/* gemm_avx2.h — the blocked f32 GEMM shared by the AVX2 kernels (bf16 weights in kernels_avx2.c, 8-bit
 * weights in quant_avx2.c): W rows are widened/dequantized and packed 16 at a time, k-major ([kc][16],
 * rows past n zero), GB_NB rows x GB_KC columns per block (192 KiB, L2); a 6 x 16 micro-kernel broadcasts
 * 6 rows of X one k at a time against two 8-wide W vectors, 12 accumulators in registers over the block.
 * Only for files compiled with -mavx2 -mfma (static inline, no symbols). See kernels_avx2.c for how the
 * block sizes were chosen. */
#ifndef QV_GEMM_AVX2_H
#define QV_GEMM_AVX2_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#ifndef AI
#define AI static inline __attribute__((always_inline))
#endif

/* 8 bf16 -> 8 f32, natural order */
AI __m256 load8_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

enum { GB_KC = 128, GB_NB = 384, GB_MR = 6 };

AI void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20); r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20); r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31); r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31); r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

AI void ukernel(float *Y, int ldy, const float *x, int ldx, const float *bp, int kc, const int mr, int nr,
                const uint16_t *bias, int first) {
    __m256 c[GB_MR][2];
    const float *xr[GB_MR];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        c[i][0] = c[i][1] = _mm256_setzero_ps();
        xr[i] = x + (size_t)i * ldx;
    }
    if (!first)   /* the Y tile read at the end (rows ldy apart, not in L1 since the last k block): ~3% */
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            _mm_prefetch((const char *)(Y + (size_t)i * ldy), _MM_HINT_T0);
            _mm_prefetch((const char *)(Y + (size_t)i * ldy + 15), _MM_HINT_T0);
        }
#pragma GCC unroll 4
    for (int t = 0; t < kc; t++) {
        __m256 b0 = _mm256_load_ps(bp + t * 16), b1 = _mm256_load_ps(bp + t * 16 + 8);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 a = _mm256_broadcast_ss(xr[i] + t);
            c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
        }
    }
    if (nr == 16) {
        __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
        if (first && bias) bias0 = load8_bf16(bias), bias1 = load8_bf16(bias + 8);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            float *y = Y + (size_t)i * ldy;
            __m256 y0 = first ? bias0 : _mm256_loadu_ps(y), y1 = first ? bias1 : _mm256_loadu_ps(y + 8);
            _mm256_storeu_ps(y, _mm256_add_ps(y0, c[i][0]));
            _mm256_storeu_ps(y + 8, _mm256_add_ps(y1, c[i][1]));
        }
    } else {
        float tmp[GB_MR][16];
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            _mm256_storeu_ps(tmp[i], c[i][0]);
            _mm256_storeu_ps(tmp[i] + 8, c[i][1]);
        }
        for (int i = 0; i < mr; i++) {
            float *y = Y + (size_t)i * ldy;
            for (int j = 0; j < nr; j++) {
                float base = first ? (bias ? qv_bf16_to_f32(bias[j]) : 0.0f) : y[j];
                y[j] = base + tmp[i][j];
            }
        }
    }
}

static void ukernel_any(float *Y, int ldy, const float *x, int ldx, const float *bp, int kc, int mr, int nr,
                        const uint16_t *bias, int first) {
    switch (mr) {
    case 6: ukernel(Y, ldy, x, ldx, bp, kc, 6, nr, bias, first); break;
    case 5: ukernel(Y, ldy, x, ldx, bp, kc, 5, nr, bias, first); break;
    case 4: ukernel(Y, ldy, x, ldx, bp, kc, 4, nr, bias, first); break;
    case 3: ukernel(Y, ldy, x, ldx, bp, kc, 3, nr, bias, first); break;
    case 2: ukernel(Y, ldy, x, ldx, bp, kc, 2, nr, bias, first); break;
    default: ukernel(Y, ldy, x, ldx, bp, kc, 1, nr, bias, first); break;
    }
}

/* packs W rows [j, j+rows) x columns [k0, k0+kc) into bp ([kc][16] f32, rows past `rows` zero) */
typedef void (*gemm_pack_fn)(const void *ctx, float *bp, int j, int rows, int k0, int kc);

/* Y[m][ldy] = X[m][ldx] . W^T (+ bias, bf16, may be NULL), W given by its packing function. scratch:
 * GB_NB * GB_KC floats, 32-byte aligned. */
static void gemm_blocked(float *Y, int ldy, const float *X, int ldx, gemm_pack_fn pack, const void *ctx,
                         const uint16_t *bias, int m, int n, int k, float *bp) {
    for (int j0 = 0; j0 < n; j0 += GB_NB) {
        int nb = n - j0 < GB_NB ? n - j0 : GB_NB;
        for (int k0 = 0; k0 < k; k0 += GB_KC) {
            int kc = k - k0 < GB_KC ? k - k0 : GB_KC;
            for (int p = 0; p < nb; p += 16) pack(ctx, bp + (size_t)p * GB_KC, j0 + p, nb - p < 16 ? nb - p : 16, k0, kc);
            for (int i0 = 0; i0 < m; i0 += GB_MR) {
                int mr = m - i0 < GB_MR ? m - i0 : GB_MR;
                for (int p = 0; p < nb; p += 16) {
                    int nr = nb - p < 16 ? nb - p : 16;
                    ukernel_any(Y + (size_t)i0 * ldy + j0 + p, ldy, X + (size_t)i0 * ldx + k0, ldx, bp + (size_t)p * GB_KC,
                                kc, mr, nr, bias ? bias + j0 + p : NULL, k0 == 0);
                }
            }
        }
    }
}

#endif
