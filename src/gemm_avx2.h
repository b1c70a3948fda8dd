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
#include <string.h>

#include "kernels_isa.h"

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

/* the Y tile a micro-kernel reads at its end (rows ldy apart, not in L1 since the last k block): ~3% */
AI void prefetch_ytile(const float *Y, int ldy, const int mr) {
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(Y + (size_t)i * ldy), _MM_HINT_T0);
        _mm_prefetch((const char *)(Y + (size_t)i * ldy + 15), _MM_HINT_T0);
    }
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
    if (!first) prefetch_ytile(Y, ldy, mr);
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

/* ---- 16-bit integer GEMM (the FAST path for large m on CPUs without a bf16 dot product) ----
 * X and W are quantized per row and per k block of QV_I16_KB (kernels_isa.h: X to +-QV_I16_QX, W to
 * +-QV_I16_QW, so one block's int32 sum cannot overflow); vpmaddwd multiplies pairs of k and adds them
 * into 8 int32 lanes: 16 multiply-adds per instruction against 8 for an f32 FMA (~1.3x the f32 micro-kernel
 * on Zen 3, where the madd + add pairs limit the issue rate). W panels are [kc/2][16][2] int16 (k pairs of 16 rows) with 16 block scales;
 * each block's integer sums are converted and scaled into Y: Y = fma(float(c), sx[i] * sw[j], Y). */

/* 16 f32 (two vectors) * inv -> 16 int16 in order */
AI __m256i i16_quant16(__m256 a, __m256 b, __m256 inv) {
    __m256i qa = _mm256_cvtps_epi32(_mm256_mul_ps(a, inv)), qb = _mm256_cvtps_epi32(_mm256_mul_ps(b, inv));
    return _mm256_permute4x64_epi64(_mm256_packs_epi32(qa, qb), 0xd8);
}

/* X rows -> int16 [m][ldq] (ldq even, zero padded) and scales [m][nkb] at +-qmax (X's QV_I16_QX; the
 * f32-rows packer below, W's QV_I16_QW); returns 0, or -1 if a value is not finite (the caller then takes
 * the f32 path) */
static inline int i16_quant_rows(int16_t *q, int ldq, float *sx, int nkb, const float *X, int ldx, int m, int k,
                                 float qmax) {
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    int bad = 0;
    for (int i = 0; i < m; i++) {
        const float *x = X + (size_t)i * ldx;
        int16_t *qi = q + (size_t)i * ldq;
        for (int b = 0; b < nkb; b++) {
            int k0 = b * QV_I16_KB, n = k - k0 < QV_I16_KB ? k - k0 : QV_I16_KB, t = 0;
            __m256i mv = _mm256_setzero_si256();
            for (; t + 8 <= n; t += 8)
                mv = _mm256_max_epi32(mv, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + k0 + t)), absmask));
            uint32_t lanes[8], mb = 0;
            _mm256_storeu_si256((__m256i *)lanes, mv);
            for (int l = 0; l < 8; l++) mb = lanes[l] > mb ? lanes[l] : mb;
            for (; t < n; t++) {
                uint32_t u;
                memcpy(&u, x + k0 + t, 4);
                u &= 0x7fffffffu;
                mb = u > mb ? u : mb;
            }
            float inv, s = qv_i16_scale(mb, qmax, &inv);
            bad |= s != s;
            sx[(size_t)i * nkb + b] = s;
            __m256 iv = _mm256_set1_ps(inv);
            for (t = 0; t + 16 <= n; t += 16)
                _mm256_storeu_si256((__m256i *)(qi + k0 + t),
                                    i16_quant16(_mm256_loadu_ps(x + k0 + t), _mm256_loadu_ps(x + k0 + t + 8), iv));
            for (; t < n; t++) qi[k0 + t] = qv_i16_round(x[k0 + t], inv);
        }
        for (int t = k; t < ldq; t++) qi[t] = 0;
    }
    return bad ? -1 : 0;
}

static inline int i16_quant_x(int16_t *q, int ldq, float *sx, int nkb, const float *X, int ldx, int m, int k) {
    return i16_quant_rows(q, ldq, sx, nkb, X, ldx, m, k, (float)QV_I16_QX);
}

/* bf16 rows [0, rows) (stride ldw) x columns [0, kc) -> one panel bp ([kc/2 rounded up][16][2] int16)
 * and the rows' 16 block scales bs (zeros past `rows`); kc <= QV_I16_KB */
static inline void i16_pack_bf16(int16_t *bp, float *bs, const uint16_t *W, size_t ldw, int rows, int kc) {
    float inv[16];
    for (int r = 0; r < 16; r++) {
        if (r >= rows) { inv[r] = 0.0f; bs[r] = 0.0f; continue; }
        const uint16_t *w = W + (size_t)r * ldw;
        __m256i mv = _mm256_setzero_si256();
        const __m256i absmask = _mm256_set1_epi16(0x7fff);
        int t = 0;
        for (; t + 16 <= kc; t += 16)
            mv = _mm256_max_epu16(mv, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(w + t)), absmask));
        uint16_t lanes[16], mb = 0;
        _mm256_storeu_si256((__m256i *)lanes, mv);
        for (int l = 0; l < 16; l++) mb = lanes[l] > mb ? lanes[l] : mb;
        for (; t < kc; t++) mb = (uint16_t)(w[t] & 0x7fff) > mb ? (uint16_t)(w[t] & 0x7fff) : mb;
        bs[r] = qv_i16_scale((uint32_t)mb << 16, (float)QV_I16_QW, &inv[r]);
    }
    int t = 0;
    for (; t + 16 <= kc; t += 16)
        for (int h = 0; h < 2; h++) {
            __m256 v[8];
            for (int q = 0; q < 8; q++) {
                int row = h * 8 + q;
                if (row < rows) {
                    const uint16_t *w = W + (size_t)row * ldw + t;
                    v[q] = _mm256_castsi256_ps(i16_quant16(load8_bf16(w), load8_bf16(w + 8), _mm256_set1_ps(inv[row])));
                } else {
                    v[q] = _mm256_setzero_ps();
                }
            }
            transpose8(v);   /* v[q] = pair q of this 16-k chunk, for rows h*8 .. h*8+7 */
            for (int q = 0; q < 8; q++) _mm256_store_ps((float *)(bp + (size_t)(t / 2 + q) * 32 + h * 16), v[q]);
        }
    for (; t < kc + (kc & 1); t++)
        for (int r = 0; r < 16; r++) {
            int16_t v = 0;
            if (r < rows && t < kc) v = qv_i16_round(qv_bf16_to_f32(W[(size_t)r * ldw + t]), inv[r]);
            bp[(size_t)(t / 2) * 32 + r * 2 + (t & 1)] = v;
        }
}

/* The same panel from 16 rows of f32 values T [16][QV_I16_KB] (rows_f32 of a non-bf16 W; rows past `rows`
 * ignored): the rows quantized as X's are (i16_quant_rows at QV_I16_QW, zero padded to QV_I16_KB), whose
 * 16-value loads are 8 pair words each, transposed as above. */
static inline void i16_pack_f32(int16_t *bp, float *bs, const float (*T)[QV_I16_KB], int rows, int kc) {
    int16_t Q[16][QV_I16_KB] __attribute__((aligned(32)));
    (void)i16_quant_rows(Q[0], QV_I16_KB, bs, 1, T[0], QV_I16_KB, rows, kc, (float)QV_I16_QW);
    for (int r = rows; r < 16; r++) {
        bs[r] = 0.0f;
        memset(Q[r], 0, sizeof Q[r]);
    }
    for (int t = 0; t < kc; t += 16)
        for (int h = 0; h < 2; h++) {
            __m256 v[8];
            for (int q = 0; q < 8; q++) v[q] = _mm256_load_ps((const float *)(Q[h * 8 + q] + t));
            transpose8(v);
            for (int q = 0; q < 8; q++) _mm256_store_ps((float *)(bp + (size_t)(t / 2 + q) * 32 + h * 16), v[q]);
        }
}

AI void ukernel_i16(float *Y, int ldy, const int16_t *x, int ldx, const float *sx, int ldsx, const int16_t *bp,
                    const float *bs, int kc, const int mr, int nr, const uint16_t *bias, int first) {
    __m256i c[GB_MR][2];
    const int16_t *xr[GB_MR];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        c[i][0] = c[i][1] = _mm256_setzero_si256();
        xr[i] = x + (size_t)i * ldx;
    }
    if (!first) prefetch_ytile(Y, ldy, mr);
    const int np = (kc + 1) / 2;
    int p = 0;
#if defined(__GNUC__) && defined(__x86_64__)
    if (mr == 6 && np > 0) {
        /* GCC spills two of the twelve accumulators in the intrinsics loop below (a product needs a
         * register before its add: 12 + 2 W + X + product = all 16), costing ~1/3: written out instead */
        const int16_t *x0 = xr[0], *x3 = xr[3];
        const int16_t *w = bp;
        long ldb = (long)ldx * 2, cnt = np;
        /* accumulators in ymm0-11 (row i: ymm 2i, 2i+1), W in ymm12-13, X pair in ymm14, product ymm15 */
#define QV_I16_ROW(addr, c0, c1)                                                         \
        "vpbroadcastd " addr ", %%ymm14\n\t"                                             \
        "vpmaddwd %%ymm12, %%ymm14, %%ymm15\n\tvpaddd %%ymm15, %%ymm" c0 ", %%ymm" c0 "\n\t" \
        "vpmaddwd %%ymm13, %%ymm14, %%ymm15\n\tvpaddd %%ymm15, %%ymm" c1 ", %%ymm" c1 "\n\t"
        __asm__ volatile("vmovdqu (%[c]), %%ymm0\n\tvmovdqu 32(%[c]), %%ymm1\n\t"
                         "vmovdqu 64(%[c]), %%ymm2\n\tvmovdqu 96(%[c]), %%ymm3\n\t"
                         "vmovdqu 128(%[c]), %%ymm4\n\tvmovdqu 160(%[c]), %%ymm5\n\t"
                         "vmovdqu 192(%[c]), %%ymm6\n\tvmovdqu 224(%[c]), %%ymm7\n\t"
                         "vmovdqu 256(%[c]), %%ymm8\n\tvmovdqu 288(%[c]), %%ymm9\n\t"
                         "vmovdqu 320(%[c]), %%ymm10\n\tvmovdqu 352(%[c]), %%ymm11\n\t"
                         "1:\n\t"
                         "vmovdqa (%[w]), %%ymm12\n\t"
                         "vmovdqa 32(%[w]), %%ymm13\n\t"
                         QV_I16_ROW("(%[x0])", "0", "1")
                         QV_I16_ROW("(%[x0],%[ldb],1)", "2", "3")
                         QV_I16_ROW("(%[x0],%[ldb],2)", "4", "5")
                         QV_I16_ROW("(%[x3])", "6", "7")
                         QV_I16_ROW("(%[x3],%[ldb],1)", "8", "9")
                         QV_I16_ROW("(%[x3],%[ldb],2)", "10", "11")
                         "addq $64, %[w]\n\t"
                         "addq $4, %[x0]\n\t"
                         "addq $4, %[x3]\n\t"
                         "decq %[cnt]\n\t"
                         "jnz 1b\n\t"
                         "vmovdqu %%ymm0, (%[c])\n\tvmovdqu %%ymm1, 32(%[c])\n\t"
                         "vmovdqu %%ymm2, 64(%[c])\n\tvmovdqu %%ymm3, 96(%[c])\n\t"
                         "vmovdqu %%ymm4, 128(%[c])\n\tvmovdqu %%ymm5, 160(%[c])\n\t"
                         "vmovdqu %%ymm6, 192(%[c])\n\tvmovdqu %%ymm7, 224(%[c])\n\t"
                         "vmovdqu %%ymm8, 256(%[c])\n\tvmovdqu %%ymm9, 288(%[c])\n\t"
                         "vmovdqu %%ymm10, 320(%[c])\n\tvmovdqu %%ymm11, 352(%[c])"
                         : [w] "+r"(w), [x0] "+r"(x0), [x3] "+r"(x3), [cnt] "+r"(cnt)
                         : [ldb] "r"(ldb), [c] "r"(&c[0][0])
                         : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                           "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
#undef QV_I16_ROW
        p = np;
    }
#endif
#pragma GCC unroll 1
    for (; p < np; p++) {
        __m256i b0 = _mm256_load_si256((const __m256i *)(bp + p * 32)), b1 = _mm256_load_si256((const __m256i *)(bp + p * 32 + 16));
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            int32_t pair;
            memcpy(&pair, xr[i] + 2 * p, 4);
            __m256i a = _mm256_set1_epi32(pair);
            c[i][0] = _mm256_add_epi32(c[i][0], _mm256_madd_epi16(a, b0));
            c[i][1] = _mm256_add_epi32(c[i][1], _mm256_madd_epi16(a, b1));
        }
    }
    __m256 s0 = _mm256_load_ps(bs), s1 = _mm256_load_ps(bs + 8);
    if (nr == 16) {
        __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
        if (first && bias) bias0 = load8_bf16(bias), bias1 = load8_bf16(bias + 8);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            float *y = Y + (size_t)i * ldy;
            __m256 f = _mm256_broadcast_ss(sx + (size_t)i * ldsx);
            __m256 y0 = first ? bias0 : _mm256_loadu_ps(y), y1 = first ? bias1 : _mm256_loadu_ps(y + 8);
            _mm256_storeu_ps(y, _mm256_fmadd_ps(_mm256_cvtepi32_ps(c[i][0]), _mm256_mul_ps(f, s0), y0));
            _mm256_storeu_ps(y + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(c[i][1]), _mm256_mul_ps(f, s1), y1));
        }
    } else {
        float tmp[GB_MR][16];
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 f = _mm256_broadcast_ss(sx + (size_t)i * ldsx);
            _mm256_storeu_ps(tmp[i], _mm256_mul_ps(f, s0));   /* scales first, then the fma per element */
            _mm256_storeu_ps(tmp[i] + 8, _mm256_mul_ps(f, s1));
        }
        int32_t ci[GB_MR][16];
        for (int i = 0; i < mr; i++) {
            _mm256_storeu_si256((__m256i *)ci[i], c[i][0]);
            _mm256_storeu_si256((__m256i *)(ci[i] + 8), c[i][1]);
        }
        for (int i = 0; i < mr; i++) {
            float *y = Y + (size_t)i * ldy;
            for (int j = 0; j < nr; j++) {
                float base = first ? (bias ? qv_bf16_to_f32(bias[j]) : 0.0f) : y[j];
                y[j] = __builtin_fmaf((float)ci[i][j], tmp[i][j], base);
            }
        }
    }
}

static inline void ukernel_i16_any(float *Y, int ldy, const int16_t *x, int ldx, const float *sx, int ldsx,
                                   const int16_t *bp, const float *bs, int kc, int mr, int nr, const uint16_t *bias, int first) {
    switch (mr) {
    case 6: ukernel_i16(Y, ldy, x, ldx, sx, ldsx, bp, bs, kc, 6, nr, bias, first); break;
    case 5: ukernel_i16(Y, ldy, x, ldx, sx, ldsx, bp, bs, kc, 5, nr, bias, first); break;
    case 4: ukernel_i16(Y, ldy, x, ldx, sx, ldsx, bp, bs, kc, 4, nr, bias, first); break;
    case 3: ukernel_i16(Y, ldy, x, ldx, sx, ldsx, bp, bs, kc, 3, nr, bias, first); break;
    case 2: ukernel_i16(Y, ldy, x, ldx, sx, ldsx, bp, bs, kc, 2, nr, bias, first); break;
    default: ukernel_i16(Y, ldy, x, ldx, sx, ldsx, bp, bs, kc, 1, nr, bias, first); break;
    }
}

enum { GI_NB = 768 };   /* W rows per block: 768 x 128 int16 = 192 KiB (L2) */

/* Y[m][ldy] = dequant(Xq . Wq^T) (+ bias): Xq int16 [m][ldx] with scales sx [m][nkb] (i16_quant_x), W
 * bf16 [n][ldw] quantized panel by panel. scratch: GI_NB * QV_I16_KB int16 + GI_NB floats, 32-byte
 * aligned. The ktable's gemm_i16; W bf16 or any format with rows_f32 (kernels_isa.h). */
static inline void gemm_i16_w(float *Y, int ldy, const int16_t *X, int ldx, const float *sx, int nkb,
                                 const qv_wsrc *W, const uint16_t *bias, int m, int n, int k, void *scratch) {
    float T[16][QV_I16_KB] __attribute__((aligned(32)));
    int16_t *bp = scratch;
    float *bs = (float *)(bp + (size_t)GI_NB * QV_I16_KB);
    for (int j0 = 0; j0 < n; j0 += GI_NB) {
        int nb = n - j0 < GI_NB ? n - j0 : GI_NB;
        for (int b = 0; b < nkb; b++) {
            int k0 = b * QV_I16_KB, kc = k - k0 < QV_I16_KB ? k - k0 : QV_I16_KB;
            for (int p = 0; p < nb; p += 16) {
                const int rows = nb - p < 16 ? nb - p : 16;
                if (W->bf16) {
                    i16_pack_bf16(bp + (size_t)p * QV_I16_KB, bs + p, W->bf16 + (size_t)(W->row0 + j0 + p) * W->ldw + k0,
                                  W->ldw, rows, kc);
                } else {
                    W->rows_f32(W, T[0], QV_I16_KB, W->row0 + j0 + p, rows, k0, kc);
                    i16_pack_f32(bp + (size_t)p * QV_I16_KB, bs + p, (const float (*)[QV_I16_KB])T, rows, kc);
                }
            }
            for (int i0 = 0; i0 < m; i0 += GB_MR) {
                int mr = m - i0 < GB_MR ? m - i0 : GB_MR;
                for (int p = 0; p < nb; p += 16) {
                    int nr = nb - p < 16 ? nb - p : 16;
                    ukernel_i16_any(Y + (size_t)i0 * ldy + j0 + p, ldy, X + (size_t)i0 * ldx + k0, ldx,
                                    sx + (size_t)i0 * nkb + b, nkb, bp + (size_t)p * QV_I16_KB, bs + p, kc, mr, nr,
                                    bias ? bias + j0 + p : NULL, b == 0);
                }
            }
        }
    }
}

#endif
