/* quant_avx512.c — the AVX-512 VNNI decode with 4-bit weights (quant.h gemv4; compiled with -mavx512f -mavx512bw
 * -mavx512vl -mavx512vnni -mf16c -mfma, chosen at run time through the AVX-512 kernel table). Everything else
 * of the 8-bit kernel table is quant_avx2.c's.
 *
 * Two blocks A, B (32 bytes of nibbles) make one 512-bit register without any shuffle: the bytes and the bytes
 * shifted right by 4, masked to 0..15, are the quarters A0-15 B0-15 A16-31 B16-31, which is the order
 * qv_q4_prep gave the activations (gemv4_pairs). vpdpbusd multiplies those unsigned nibbles by the signed x
 * and adds 4 products per int32 lane onto xs (-8 times the lane's x sum), so each lane holds its part of
 * sum x (q - 8) exactly; lanes 0-3 and 8-11 belong to A, 4-7 and 12-15 to B, and one permute spreads the two
 * blocks' scales dx * dw the same way for the FMA. */
#include "quant.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#include <pthread.h>

static void gemv4(float *Y, const int8_t *xp, const int32_t *xs, const float *xd, const uint8_t *wq, const uint16_t *wd,
                  int nr, int k, const float *bias) {
    const int nb = k / 32, n8 = nb / 8 * 8;
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m512i ix[4] = {
        _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1),
        _mm512_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3, 2, 2, 2, 2, 3, 3, 3, 3),
        _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 4, 4, 4, 4, 5, 5, 5, 5),
        _mm512_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7, 6, 6, 6, 6, 7, 7, 7, 7)};
    for (int j = 0; j < nr; j++) {
        const uint8_t *w = wq + (size_t)j * (k / 2);
        const uint16_t *d = wd + (size_t)j * nb;
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        int b = 0;
        for (; b < n8; b += 8) {   /* 8 blocks: their 8 scales, then 4 pairs */
            const __m512 s8 = _mm512_castps256_ps512(
                _mm256_mul_ps(_mm256_loadu_ps(xd + b), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + b)))));
            _mm_prefetch((const char *)(w + b * 16) + 2048, _MM_HINT_T0);
            _mm_prefetch((const char *)(w + b * 16) + 2048 + 64, _MM_HINT_T0);
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                const int bq = b + 2 * q;
                const __m256i t = _mm256_loadu_si256((const __m256i *)(w + bq * 16));
                const __m512i z = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1), m4);
                const __m512i p = _mm512_dpbusd_epi32(_mm512_loadu_si512(xs + bq * 8), z, _mm512_loadu_si512(xp + bq * 32));
                const __m512 f = _mm512_cvtepi32_ps(p), sc = _mm512_permutexvar_ps(ix[q], s8);
                if (q & 1) acc1 = _mm512_fmadd_ps(sc, f, acc1);
                else acc0 = _mm512_fmadd_ps(sc, f, acc0);
            }
        }
        for (; b + 2 <= nb; b += 2) {   /* pairs left */
            const float sa = xd[b] * _cvtsh_ss(d[b]), sb = xd[b + 1] * _cvtsh_ss(d[b + 1]);
            const __m256i t = _mm256_loadu_si256((const __m256i *)(w + b * 16));
            const __m512i z = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1), m4);
            const __m512i p = _mm512_dpbusd_epi32(_mm512_loadu_si512(xs + b * 8), z, _mm512_loadu_si512(xp + b * 32));
            const __m512 sc = _mm512_setr_ps(sa, sa, sa, sa, sb, sb, sb, sb, sa, sa, sa, sa, sb, sb, sb, sb);
            acc0 = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(p), acc0);
        }
        float y = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
        if (b < nb) {   /* a last odd block, x in its own order: low nibbles then high */
            const __m128i h = _mm_loadu_si128((const __m128i *)(w + b * 16));
            const __m256i z = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(h), _mm_srli_epi16(h, 4), 1),
                                               _mm256_set1_epi8(15));
            const __m256i p = _mm256_dpbusd_epi32(_mm256_loadu_si256((const __m256i *)(xs + b * 8)), z,
                                                  _mm256_loadu_si256((const __m256i *)(xp + b * 32)));
            const __m128i p4 = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
            const __m128i p2 = _mm_add_epi32(p4, _mm_unpackhi_epi64(p4, p4));
            y += xd[b] * _cvtsh_ss(d[b]) * (float)(_mm_cvtsi128_si32(p2) + _mm_extract_epi32(p2, 1));
        }
        Y[j] = (bias ? bias[j] : 0.0f) + y;
    }
}

static qv_q8_table q_avx512;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void) {
    q_avx512 = *qv_q8_table_avx2();
    q_avx512.name = "avx512";
    q_avx512.gemv4 = gemv4;
    q_avx512.gemv4_pairs = 1;
}

const qv_q8_table *qv_q8_table_avx512(void) {
    if (!qv_q8_table_avx2()) return NULL;
    pthread_once(&once, init);
    return &q_avx512;
}

#else
const qv_q8_table *qv_q8_table_avx512(void) { return NULL; }
#endif
