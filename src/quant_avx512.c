/* quant_avx512.c — the AVX-512 VNNI decode with 4-bit weights (quant.h gemv4; compiled with -mavx512f -mavx512bw
 * -mavx512vl -mavx512vnni -mf16c -mfma, chosen at run time through the AVX-512 kernel table). Everything else
 * of the 8-bit kernel table is quant_avx2.c's. Only 512-bit intrinsics (and the 256-bit loads tests/avx512_emu.h
 * has), so unit_quant also runs this file on emulated intrinsics where the CPU lacks them.
 *
 * Two blocks A, B (32 bytes of nibbles) make one register without a shuffle: the 32 bytes broadcast to both
 * halves, the upper half shifted right by 4, all masked to 0..15, are the quarters A0-15 B0-15 A16-31 B16-31,
 * the order qv_q4_prep gave the activations (gemv4_pairs). vpdpbusd multiplies those unsigned nibbles by the
 * signed x and adds 4 products per int32 lane onto xs (-8 times the lane's x sum), so each lane holds its part
 * of sum x (q - 8) exactly; lanes 0-3 and 8-11 belong to A, 4-7 and 12-15 to B, and one permute spreads the
 * blocks' scales dx * dw the same way for the FMA. Two accumulators; a last odd block in plain C.
 * Measured on 2 Zen 4 cores, 7B: decode 4.2 -> 5.2 tokens/s (CPU rate) against the AVX2 sign-trick tiles. The same
 * scheme for 8-bit weights (q + 128 by flipping the sign bit, xs = -128 x sums) was slower than the AVX2 tiles
 * there (2.9-3.2 against 3.4 tokens/s: those decode at the memory limit already, and the offsets' extra stream
 * costs), so 8-bit weights keep quant_avx2.c's. */
#include "quant.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#include <pthread.h>

enum { Q4PF = 2048 };   /* prefetch distance in each weight stream, bytes */

static void gemv4(float *Y, const int8_t *xp, const int32_t *xs, const float *xd, const uint8_t *wq, const uint16_t *wd,
                  int nr, int k, const float *bias) {
    const int nb = k / 32, ne = nb / 2 * 2;
    const __m512i m4 = _mm512_set1_epi32(0x0f0f0f0f);
    const __m512i sh = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0x40004, 0x40004, 0x40004, 0x40004, 0x40004, 0x40004,
                                         0x40004, 0x40004);   /* 16-bit shift counts: 0 low half, 4 high half */
    const __m512i ix[4] = {
        _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1),
        _mm512_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3, 2, 2, 2, 2, 3, 3, 3, 3),
        _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 4, 4, 4, 4, 5, 5, 5, 5),
        _mm512_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7, 6, 6, 6, 6, 7, 7, 7, 7)};
    for (int j = 0; j < nr; j++) {
        const uint8_t *w = wq + (size_t)j * (k / 2);
        const uint16_t *d = wd + (size_t)j * nb;
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        for (int b = 0; b < ne; b += 8) {   /* up to 8 blocks: their scales, then the pairs */
            const int bn = ne - b < 8 ? ne - b : 8;
            const __mmask16 mk = (__mmask16)((1u << bn) - 1);
            const __m512 s8 = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, xd + b), _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, d + b)));
            _mm_prefetch((const char *)(w + b * 16) + Q4PF, _MM_HINT_T0);
            _mm_prefetch((const char *)(w + b * 16) + Q4PF + 64, _MM_HINT_T0);
#define Q4_PAIR(q, acc)                                                                                                    \
    do {                                                                                                                   \
        const int bq = b + 2 * (q);                                                                                        \
        const __m512i t = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + bq * 16)));                      \
        const __m512i z = _mm512_and_si512(_mm512_srlv_epi16(t, sh), m4);                                                  \
        const __m512i p = _mm512_dpbusd_epi32(_mm512_loadu_si512(xs + bq * 8), z, _mm512_loadu_si512(xp + bq * 32));      \
        acc = _mm512_fmadd_ps(_mm512_permutexvar_ps(ix[q], s8), _mm512_cvtepi32_ps(p), acc);                              \
    } while (0)
            if (bn == 8) {
                Q4_PAIR(0, acc0);
                Q4_PAIR(1, acc1);
                Q4_PAIR(2, acc0);
                Q4_PAIR(3, acc1);
            } else {
                for (int q = 0; q < bn / 2; q++) Q4_PAIR(q, acc0);
            }
#undef Q4_PAIR
        }
        float y = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
        if (ne < nb) y += qv_q8_dot_ref(xp + ne * 32, xd + ne, w + ne * 16, d + ne, 32, 1);   /* a last odd block, x in its own order */
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
