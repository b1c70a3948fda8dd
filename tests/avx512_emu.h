/* avx512_emu.h — plain-C stand-ins for the AVX-512 intrinsics src/kernels_avx512.c uses, so that its
 * logic (blocking, tails, masks, the even/odd and bf16-pair layouts) is tested on CPUs without AVX-512
 * (unit_kernels.c compiles that file a second time against this header). Semantics follow the Intel
 * intrinsics guide; masked loads touch only the selected elements, so ASan still sees any read past a
 * weight row. vdpbf16ps: per f32 lane, src + a[2i+1]*b[2i+1] then + a[2i]*b[2i], products exact. */
#ifndef QV_AVX512_EMU_H
#define QV_AVX512_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wpsabi"

typedef float __m512 __attribute__((vector_size(64), may_alias));
typedef long long __m512i __attribute__((vector_size(64), may_alias));
typedef long long __m256i __attribute__((vector_size(32), may_alias));
typedef short __m512bh __attribute__((vector_size(64), may_alias));
typedef uint16_t __mmask16;
typedef uint32_t __mmask32;

typedef union { __m512 v; float f[16]; uint32_t u[16]; int32_t i[16]; uint16_t h[32]; } emu512;
typedef union { __m256i v; uint16_t h[16]; } emu256;

#define EMU static inline
#define V(x) ((emu512){.v = (__m512)(x)})

EMU __m512 _mm512_setzero_ps(void) { emu512 r; memset(&r, 0, sizeof r); return r.v; }
EMU __m512 _mm512_set1_ps(float a) { emu512 r; for (int i = 0; i < 16; i++) r.f[i] = a; return r.v; }
EMU __m512i _mm512_set1_epi32(int a) { emu512 r; for (int i = 0; i < 16; i++) r.i[i] = a; return (__m512i)r.v; }
EMU __m512 _mm512_castsi512_ps(__m512i a) { return (__m512)a; }
EMU __m512i _mm512_castps_si512(__m512 a) { return (__m512i)a; }

EMU __m512 _mm512_loadu_ps(const void *p) { emu512 r; memcpy(r.f, p, 64); return r.v; }
EMU __m512i _mm512_loadu_si512(const void *p) { emu512 r; memcpy(r.f, p, 64); return (__m512i)r.v; }
EMU __m256i _mm256_loadu_si256(const __m256i *p) { emu256 r; memcpy(r.h, p, 32); return r.v; }
EMU __m512 _mm512_maskz_loadu_ps(__mmask16 k, const void *p) {
    emu512 r;
    for (int i = 0; i < 16; i++) r.f[i] = (k >> i & 1) ? ((const float *)p)[i] : 0.0f;
    return r.v;
}
EMU __m256i _mm256_maskz_loadu_epi16(__mmask16 k, const void *p) {
    emu256 r;
    for (int i = 0; i < 16; i++) r.h[i] = (k >> i & 1) ? ((const uint16_t *)p)[i] : 0;
    return r.v;
}
EMU __m512i _mm512_maskz_loadu_epi16(__mmask32 k, const void *p) {
    emu512 r;
    for (int i = 0; i < 32; i++) r.h[i] = (k >> i & 1) ? ((const uint16_t *)p)[i] : 0;
    return (__m512i)r.v;
}
EMU void _mm512_mask_storeu_ps(void *p, __mmask16 k, __m512 a) {
    emu512 x = V(a);
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) ((float *)p)[i] = x.f[i];
}
EMU void _mm512_mask_cvtepi32_storeu_epi16(void *p, __mmask16 k, __m512i a) {
    emu512 x = V(a);
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) ((uint16_t *)p)[i] = (uint16_t)x.u[i];
}

EMU __m512 _mm512_add_ps(__m512 a, __m512 b) { emu512 x = V(a), y = V(b); for (int i = 0; i < 16; i++) x.f[i] = x.f[i] + y.f[i]; return x.v; }
EMU __m512 _mm512_mul_ps(__m512 a, __m512 b) { emu512 x = V(a), y = V(b); for (int i = 0; i < 16; i++) x.f[i] = x.f[i] * y.f[i]; return x.v; }
EMU __m512 _mm512_fmadd_ps(__m512 a, __m512 b, __m512 c) {
    emu512 x = V(a), y = V(b), z = V(c);
    for (int i = 0; i < 16; i++) z.f[i] = fmaf(x.f[i], y.f[i], z.f[i]);
    return z.v;
}
EMU float _mm512_reduce_add_ps(__m512 a) {
    emu512 x = V(a);
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) x.f[i] = x.f[i] + x.f[i + w];
    return x.f[0];
}
EMU __m512 _mm512_dpbf16_ps(__m512 src, __m512bh a, __m512bh b) {
    emu512 s = V(src), x = V(a), y = V(b);
    for (int i = 0; i < 16; i++) {
        float a0, a1, b0, b1;
        uint32_t t;
        t = (uint32_t)x.h[2 * i] << 16; memcpy(&a0, &t, 4);
        t = (uint32_t)x.h[2 * i + 1] << 16; memcpy(&a1, &t, 4);
        t = (uint32_t)y.h[2 * i] << 16; memcpy(&b0, &t, 4);
        t = (uint32_t)y.h[2 * i + 1] << 16; memcpy(&b1, &t, 4);
        s.f[i] = s.f[i] + a1 * b1;
        s.f[i] = s.f[i] + a0 * b0;
    }
    return s.v;
}

EMU __m512i _mm512_add_epi32(__m512i a, __m512i b) { emu512 x = V(a), y = V(b); for (int i = 0; i < 16; i++) x.u[i] += y.u[i]; return (__m512i)x.v; }
EMU __m512i _mm512_and_si512(__m512i a, __m512i b) { emu512 x = V(a), y = V(b); for (int i = 0; i < 16; i++) x.u[i] &= y.u[i]; return (__m512i)x.v; }
EMU __m512i _mm512_or_si512(__m512i a, __m512i b) { emu512 x = V(a), y = V(b); for (int i = 0; i < 16; i++) x.u[i] |= y.u[i]; return (__m512i)x.v; }
EMU __m512i _mm512_slli_epi32(__m512i a, unsigned n) { emu512 x = V(a); for (int i = 0; i < 16; i++) x.u[i] = n > 31 ? 0 : x.u[i] << n; return (__m512i)x.v; }
EMU __m512i _mm512_srli_epi32(__m512i a, unsigned n) { emu512 x = V(a); for (int i = 0; i < 16; i++) x.u[i] = n > 31 ? 0 : x.u[i] >> n; return (__m512i)x.v; }
EMU __m512i _mm512_cvtepu16_epi32(__m256i a) {
    emu256 x = {.v = a};
    emu512 r;
    for (int i = 0; i < 16; i++) r.u[i] = x.h[i];
    return (__m512i)r.v;
}
EMU __mmask16 _mm512_cmpgt_epu32_mask(__m512i a, __m512i b) {
    emu512 x = V(a), y = V(b);
    __mmask16 k = 0;
    for (int i = 0; i < 16; i++)
        if (x.u[i] > y.u[i]) k |= (__mmask16)(1u << i);
    return k;
}
EMU __m512i _mm512_mask_blend_epi32(__mmask16 k, __m512i a, __m512i b) {
    emu512 x = V(a), y = V(b);
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) x.u[i] = y.u[i];
    return (__m512i)x.v;
}

EMU __m512i _mm512_setzero_si512(void) { emu512 r; memset(&r, 0, sizeof r); return (__m512i)r.v; }
EMU void _mm512_storeu_si512(void *p, __m512i a) { memcpy(p, &a, 64); }
EMU __m512i _mm512_mask_i32gather_epi32(__m512i src, __mmask16 k, __m512i idx, const void *base, int scale) {
    emu512 r = V(src), ix = V(idx);
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) memcpy(&r.u[i], (const char *)base + (ptrdiff_t)ix.i[i] * scale, 4);
    return (__m512i)r.v;
}
EMU __m512i _mm512_max_epu32(__m512i a, __m512i b) {
    emu512 x = V(a), y = V(b);
    for (int i = 0; i < 16; i++) x.u[i] = x.u[i] > y.u[i] ? x.u[i] : y.u[i];
    return (__m512i)x.v;
}
EMU __m512i _mm512_max_epu16(__m512i a, __m512i b) {
    emu512 x = V(a), y = V(b);
    for (int i = 0; i < 32; i++) x.h[i] = x.h[i] > y.h[i] ? x.h[i] : y.h[i];
    return (__m512i)x.v;
}
EMU __m512i _mm512_cvtps_epi32(__m512 a) {   /* round to nearest even; NaN and overflow -> INT32_MIN */
    emu512 x = V(a);
    for (int i = 0; i < 16; i++) {
        float f = nearbyintf(x.f[i]);
        x.i[i] = f == f && f >= -2147483648.0f && f < 2147483648.0f ? (int32_t)f : INT32_MIN;
    }
    return (__m512i)x.v;
}
EMU __m512 _mm512_cvtepi32_ps(__m512i a) { emu512 x = V(a); for (int i = 0; i < 16; i++) x.f[i] = (float)x.i[i]; return x.v; }
EMU __m512i _mm512_dpwssd_epi32(__m512i src, __m512i a, __m512i b) {   /* int32 lanes, wrapping */
    emu512 s = V(src), x = V(a), y = V(b);
    for (int i = 0; i < 16; i++)
        s.u[i] += (uint32_t)((int32_t)(int16_t)x.h[2 * i] * (int16_t)y.h[2 * i]) +
                  (uint32_t)((int32_t)(int16_t)x.h[2 * i + 1] * (int16_t)y.h[2 * i + 1]);
    return (__m512i)s.v;
}

EMU __m512 _mm512_cvtph_ps(__m256i a) {
    emu256 x = {.v = a};
    emu512 r;
    for (int i = 0; i < 16; i++) r.f[i] = qv_f16_to_f32(x.h[i]);
    return r.v;
}

EMU __m512i _mm512_unpacklo_epi32(__m512i a, __m512i b) {   /* per 128-bit lane: a0 b0 a1 b1 */
    emu512 x = V(a), y = V(b), r;
    for (int L = 0; L < 4; L++) {
        r.u[4 * L] = x.u[4 * L]; r.u[4 * L + 1] = y.u[4 * L];
        r.u[4 * L + 2] = x.u[4 * L + 1]; r.u[4 * L + 3] = y.u[4 * L + 1];
    }
    return (__m512i)r.v;
}
EMU __m512i _mm512_unpackhi_epi32(__m512i a, __m512i b) {   /* per lane: a2 b2 a3 b3 */
    emu512 x = V(a), y = V(b), r;
    for (int L = 0; L < 4; L++) {
        r.u[4 * L] = x.u[4 * L + 2]; r.u[4 * L + 1] = y.u[4 * L + 2];
        r.u[4 * L + 2] = x.u[4 * L + 3]; r.u[4 * L + 3] = y.u[4 * L + 3];
    }
    return (__m512i)r.v;
}
EMU __m512i _mm512_unpacklo_epi64(__m512i a, __m512i b) {   /* per lane: a.q0 b.q0 */
    emu512 x = V(a), y = V(b), r;
    for (int L = 0; L < 4; L++) {
        r.u[4 * L] = x.u[4 * L]; r.u[4 * L + 1] = x.u[4 * L + 1];
        r.u[4 * L + 2] = y.u[4 * L]; r.u[4 * L + 3] = y.u[4 * L + 1];
    }
    return (__m512i)r.v;
}
EMU __m512i _mm512_unpackhi_epi64(__m512i a, __m512i b) {   /* per lane: a.q1 b.q1 */
    emu512 x = V(a), y = V(b), r;
    for (int L = 0; L < 4; L++) {
        r.u[4 * L] = x.u[4 * L + 2]; r.u[4 * L + 1] = x.u[4 * L + 3];
        r.u[4 * L + 2] = y.u[4 * L + 2]; r.u[4 * L + 3] = y.u[4 * L + 3];
    }
    return (__m512i)r.v;
}
EMU __m512i _mm512_shuffle_i32x4(__m512i a, __m512i b, int imm) {   /* lanes a[imm 1:0] a[3:2] b[5:4] b[7:6] */
    emu512 x = V(a), y = V(b), r;
    for (int L = 0; L < 4; L++) {
        const emu512 *s = L < 2 ? &x : &y;
        int from = (imm >> (2 * L)) & 3;
        for (int e = 0; e < 4; e++) r.u[4 * L + e] = s->u[4 * from + e];
    }
    return (__m512i)r.v;
}

/* for src/quant_avx512.c */
#define _MM_HINT_T0 3
#define _mm_prefetch(p, hint) ((void)(p), (void)(hint))
EMU __m512i _mm512_setr_epi32(int a0, int a1, int a2, int a3, int a4, int a5, int a6, int a7, int a8, int a9, int a10,
                              int a11, int a12, int a13, int a14, int a15) {
    emu512 r;
    const int v[16] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15};
    for (int i = 0; i < 16; i++) r.i[i] = v[i];
    return (__m512i)r.v;
}
EMU __m512i _mm512_broadcast_i64x4(__m256i a) { emu512 r; memcpy(r.f, &a, 32); memcpy(r.f + 8, &a, 32); return (__m512i)r.v; }
EMU __m512i _mm512_srlv_epi16(__m512i a, __m512i n) {
    emu512 x = V(a), c = V(n);
    for (int i = 0; i < 32; i++) x.h[i] = c.h[i] > 15 ? 0 : (uint16_t)(x.h[i] >> c.h[i]);
    return (__m512i)x.v;
}
EMU __m512i _mm512_dpbusd_epi32(__m512i src, __m512i a, __m512i b) {   /* u8 x s8, 4 per int32 lane, wrapping */
    emu512 s = V(src), x = V(a), y = V(b);
    const uint8_t *ua = (const uint8_t *)x.f;
    const int8_t *sb = (const int8_t *)y.f;
    for (int i = 0; i < 16; i++)
        for (int e = 0; e < 4; e++) s.u[i] += (uint32_t)((int32_t)ua[4 * i + e] * sb[4 * i + e]);
    return (__m512i)s.v;
}
EMU __m512 _mm512_permutexvar_ps(__m512i idx, __m512 a) {
    emu512 x = V(a), ix = V(idx), r;
    for (int i = 0; i < 16; i++) r.f[i] = x.f[ix.u[i] & 15];
    return r.v;
}

EMU __m512 _mm512_load_ps(const void *p) { emu512 r; memcpy(r.f, p, 64); return r.v; }
EMU void _mm512_store_ps(void *p, __m512 a) { memcpy(p, &a, 64); }

#undef V
#undef EMU
#endif
