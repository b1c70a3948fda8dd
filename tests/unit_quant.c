/* unit_quant.c — 8-bit weights (src/quant.h): quantize/dequantize bounds, AVX2 vs the scalar reference
 * (quantization bit-identical, products equal up to f32 rounding of the block sums), and qv_linear_q8
 * against a float64 product of the dequantized weights with the float X, within the bound the int8
 * rounding of the activations allows. Awkward sizes, bias or not, ldy > n, pools of 1 and 3. From m =
 * QV_Q8_I16_M (prefill) the product is the 16-bit GEMM of kernels_isa.h on the dequantized weights: bit for
 * bit its scalar definition, on every kernel table this CPU has. */
#include "kernels.h"
#include "kernels_isa.h"
#include "quant.h"
#include "tensor.h"
#include "test.h"

#include <stdint.h>

/* src/quant_avx512.c a second time, against plain-C intrinsics (avx512_emu.h, as unit_kernels does for
 * kernels_avx512.c), so its decode kernel is tested on CPUs without AVX-512 VNNI too */
#define _IMMINTRIN_H_INCLUDED 1
#define __AVX512F__ 1
#define __AVX512BW__ 1
#define __AVX512VL__ 1
#define __AVX512VNNI__ 1
#include "avx512_emu.h"
#define qv_q8_table_avx512 emu_q8_table_avx512
#include "../src/quant_avx512.c"
#undef qv_q8_table_avx512

static uint64_t rs = 88172645463325252ull;
static double urand(void) {   /* [0, 1) */
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return (double)(rs >> 11) / 9007199254740992.0;
}

static void *amalloc(size_t n) {
    void *p = NULL;
    return posix_memalign(&p, 64, n ? n : 64) ? NULL : p;
}

/* 256 weights for the round trips: blocks of tiny values, zeros, large values and ordinary ones, and a
 * block whose maxabs is negative (-7.5 at 100); wb bf16, w the same values in f32 */
enum { RT_K = 256 };
static void roundtrip_weights(float *w, uint16_t *wb) {
    for (int t = 0; t < RT_K; t++) {
        double v = (urand() * 2 - 1) * (t < 32 ? 1e-3 : t < 64 ? 0 : t < 96 ? 100.0 : 1.0);
        if (t == 100) v = -7.5;
        wb[t] = qv_f32_to_bf16((float)v);
        w[t] = qv_bf16_to_f32(wb[t]);
    }
}

static void test_roundtrip(void) {
    enum { K = RT_K };
    float w[K], back[K];
    uint16_t wb[K];
    roundtrip_weights(w, wb);
    void *mem = amalloc(qv_q8_bytes(1, K));
    qv_q8_mat W;
    qv_err err = {0};
    CHECK(qv_q8_quantize_bf16(&W, mem, wb, 1, K, NULL, "w", &err) == QV_OK);
    qv_q8_dequantize_row(back, &W, 0);
    int ok = 1, extreme = 1;
    for (int b = 0; b < K / 32; b++) {
        float amax = 0, d = qv_f16_to_f32(W.dh[b]);
        int has127 = 0;
        for (int t = b * 32; t < b * 32 + 32; t++) {
            amax = fmaxf(amax, fabsf(w[t]));
            if (fabsf(back[t] - w[t]) > d * 0.5f * (1 + 1e-5f) + 1e-30f) ok = 0;
            if (abs(W.q[t]) >= 126) has127 = 1;   /* 127 unless the half scale's rounding up (subnormal) took one step */
            if (W.q[t] < -127) ok = 0;
        }
        /* amax / 127 rounded up to a half: at most one half step above (2^-10 relative, 2^-24 subnormal) */
        if (d < amax / 127.0f || d - amax / 127.0f > fmaxf(amax / 127.0f * 0x1p-10f, 0x1p-24f)) ok = 0;
        if (amax > 0 && !has127) extreme = 0;
        if (amax == 0 && d != 0) ok = 0;
    }
    CHECK_MSG(ok, "|w - d q| <= d/2 and d = maxabs/127 rounded up to a half, per block");
    CHECK_MSG(extreme, "the largest |w| of each block quantizes to +-127 (126 on a subnormal scale)");
    /* a weight past the half scales' range is refused like a non-finite one */
    uint16_t big[32];
    for (int t = 0; t < 32; t++) big[t] = qv_f32_to_bf16(t == 3 ? 1e7f : 1.0f);
    CHECK(qv_q8_quantize_bf16(&W, mem, big, 1, 32, NULL, "w", &err) == QV_ERR_FORMAT);
    CHECK(qv_q4_quantize_bf16(&W, mem, big, 1, 32, NULL, "w", &err) == QV_ERR_FORMAT);
    /* a non-finite weight is refused, naming the tensor */
    wb[77] = 0x7f80;
    CHECK(qv_q8_quantize_bf16(&W, mem, wb, 1, K, NULL, "w", &err) == QV_ERR_FORMAT);
    CHECK(qv_q8_quantize_bf16(&W, mem, wb, 1, 48, NULL, "w", &err) == QV_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "multiple of 32") != NULL);
    CHECK(qv_q8_bytes(3, 40) == 0 && qv_q8_bytes(0, 32) == 0 && qv_q8_bytes(-1, 32) == 0);
    CHECK(qv_q8_bytes((int64_t)1 << 40, 32) == 0);
    free(mem);
}

/* quantization of the same rows by scalar and AVX2: identical bytes and scales */
static void test_quant_identical(void) {
    if (!qv_q8_force("avx2")) { printf("no AVX2: scalar only\n"); return; }
    enum { K = 3584 };
    static float x[K];
    static uint16_t wb[K];
    static int8_t q1[K], q2[K];
    static float d1[K / 32], d2[K / 32];
    for (int t = 0; t < K; t++) {
        x[t] = (float)((urand() * 2 - 1) * (1 + 10 * (t % 97 == 0)));
        if (t % 33 == 5) x[t] = 0.5f * (float)(t % 7);   /* exact .5 ties in x*id are possible */
        wb[t] = qv_f32_to_bf16(x[t] * 0.01f);
    }
    for (int t = 320; t < 352; t++) x[t] = 0;   /* an all-zero block */
    qv_q8_force("scalar");
    qv_q8_quantize_row(q1, d1, x, K);
    qv_q8_force("avx2");
    qv_q8_quantize_row(q2, d2, x, K);
    CHECK(memcmp(q1, q2, K) == 0 && memcmp(d1, d2, sizeof d1) == 0);
    void *m1 = amalloc(qv_q8_bytes(1, K)), *m2 = amalloc(qv_q8_bytes(1, K));
    qv_q8_mat W1, W2;
    qv_err err = {0};
    qv_q8_force("scalar");
    CHECK(qv_q8_quantize_bf16(&W1, m1, wb, 1, K, NULL, "w", &err) == QV_OK);
    qv_q8_force("avx2");
    CHECK(qv_q8_quantize_bf16(&W2, m2, wb, 1, K, NULL, "w", &err) == QV_OK);
    CHECK(memcmp(W1.q, W2.q, K) == 0 && memcmp(W1.dh, W2.dh, K / 32 * sizeof(uint16_t)) == 0);
    free(m1);
    free(m2);
}

static double max_ad = 0, max_rel64 = 0;

static void one_case(int m, int n, int k, int with_bias, int ldy, qv_pool *pool, int have_avx2) {
    float *X = malloc(sizeof(float) * m * k), *Ys = malloc(sizeof(float) * m * ldy), *Ya = malloc(sizeof(float) * m * ldy);
    uint16_t *Wb = malloc(2 * (size_t)n * k), *b = malloc(2 * (size_t)n);
    for (int i = 0; i < m * k; i++) X[i] = (float)((urand() * 2 - 1) * (i % 13 == 0 ? 4 : 1));
    for (int i = 0; i < n * k; i++) Wb[i] = qv_f32_to_bf16((float)((urand() * 2 - 1) * 0.05));
    for (int j = 0; j < n; j++) b[j] = qv_f32_to_bf16((float)(urand() - 0.5));
    void *mem = amalloc(qv_q8_bytes(n, k));
    qv_q8_mat W;
    qv_err err = {0};
    CHECK(qv_q8_quantize_bf16(&W, mem, Wb, n, k, pool, "w", &err) == QV_OK);
    for (int i = 0; i < m * ldy; i++) Ys[i] = Ya[i] = -12345.0f;
    const uint16_t *bp = with_bias ? b : NULL;
    qv_q8_force("scalar");
    qv_linear_q8(pool, Ys, ldy, X, &W, bp, m, n, k);
    if (have_avx2) {
        qv_q8_force("avx2");
        qv_linear_q8(pool, Ya, ldy, X, &W, bp, m, n, k);
    }
    int untouched = 1, avx_ok = 1, ref_ok = 1;
    int8_t *xq = malloc((size_t)k);
    float *xd = malloc(sizeof(float) * (k / 32)), *wr = malloc(sizeof(float) * k);
    for (int i = 0; i < m; i++) {
        qv_q8_quantize_row(xq, xd, X + (size_t)i * k, k);
        for (int j = ldy > n ? n : ldy; j < ldy; j++)
            if (Ys[(size_t)i * ldy + j] != -12345.0f || Ya[(size_t)i * ldy + j] != -12345.0f) untouched = 0;
        for (int j = 0; j < n; j++) {
            qv_q8_dequantize_row(wr, &W, j);
            /* bound for the two f32 accumulation orders: sum over blocks of |dx dw| sum |qx qw| */
            double sabs = 0, exact = 0, bound_x = 0, sxw = 0;
            for (int bk = 0; bk < k / 32; bk++) {
                int32_t s = 0;   /* sum |qx qw|: lanes may cancel, so the bound is on the absolute products */
                for (int t = bk * 32; t < bk * 32 + 32; t++) {
                    s += abs(xq[t] * W.q[(size_t)j * k + t]);
                    bound_x += 0.5 * xd[bk] * fabs(wr[t]);   /* |x - dx qx| <= dx/2 */
                    sxw += fabs((double)X[(size_t)i * k + t] * wr[t]);
                }
                sabs += fabs((double)xd[bk] * qv_f16_to_f32(W.dh[(size_t)j * (k / 32) + bk]) * s);
            }
            for (int t = 0; t < k; t++) exact += (double)X[(size_t)i * k + t] * wr[t];
            double bias = with_bias ? qv_bf16_to_f32(b[j]) : 0.0;
            double ys = Ys[(size_t)i * ldy + j], ya = Ya[(size_t)i * ldy + j];
            /* tiles (m < QV_Q8_I16_M): block sums in 8 lanes, (k/32 + 2) roundings; the 16-bit GEMM (larger m,
             * one table for both): the same bits, (k + 2) u left as slack */
            double tol = (m < QV_Q8_I16_M ? (k / 32 + 2) * 1.2e-7 : (k + 2) * 6e-8) * (sabs + fabs(bias)) + 1e-30;
            if (have_avx2 && fabs(ya - ys) > tol) {
                if (avx_ok) fprintf(stderr, "  m%d n%d k%d [%d][%d]: avx2 %.9g scalar %.9g tol %g\n", m, n, k, i, j, ya, ys, tol);
                avx_ok = 0;
            }
            if (have_avx2 && fabs(ya - ys) / (sabs + 1e-30) > max_ad) max_ad = fabs(ya - ys) / (sabs + 1e-30);
            double e = fabs(ys - (bias + exact));
            if (e > bound_x * 1.001 + tol) {
                if (ref_ok) fprintf(stderr, "  m%d n%d k%d [%d][%d]: %.9g vs f64 %.9g (bound %g)\n", m, n, k, i, j, ys, bias + exact, bound_x);
                ref_ok = 0;
            }
            if (e / (sxw + 1e-30) > max_rel64) max_rel64 = e / (sxw + 1e-30);
        }
    }
    CHECK_MSG(untouched, "m%d n%d k%d ldy%d: columns past n untouched", m, n, k, ldy);
    CHECK_MSG(avx_ok, "m%d n%d k%d bias%d pool%d: avx2 == scalar to f32 rounding", m, n, k, with_bias, qv_pool_size(pool));
    CHECK_MSG(ref_ok, "m%d n%d k%d: within the int8 activation rounding of the f64 product", m, n, k);
    free(X); free(Ys); free(Ya); free(Wb); free(b); free(mem); free(xq); free(xd); free(wr);
}

static void test_rows_f32(const qv_wsrc *w, float *dst, int ldd, int64_t r0, int rows, int k0, int kc) {
    float *row = malloc(sizeof(float) * ((const qv_q8_mat *)w->ctx)->k);
    for (int r = 0; r < rows; r++) {
        qv_q8_dequantize_row(row, w->ctx, (int)(r0 + r));
        memcpy(dst + (size_t)r * ldd, row + k0, sizeof(float) * kc);
    }
    free(row);
}

/* prefill-sized m: qv_linear_q8 == qv_i16_gemm_ref on the dequantized rows, bit for bit, per table and
 * format */
static void test_i16_path(qv_pool *pool, int bits) {
    static const char *tabs[] = {"scalar", "avx2", "avx512bf16"};
    static const int ms[] = {16, 17, 40}, ns[] = {33, 300}, ks[] = {32, 160, 3584};
    const char *orig = qv_kernels_name();
    for (size_t ti = 0; ti < 3; ti++) {
        if (!qv_kernels_force(tabs[ti])) continue;
        for (size_t a = 0; a < 3; a++)
            for (size_t bb = 0; bb < 2; bb++)
                for (size_t q = 0; q < 3; q++) {
                    int m = ms[a], n = ns[bb], k = ks[q], ldq = (k + 1) / 2 * 2, nkb = (k + QV_I16_KB - 1) / QV_I16_KB;
                    float *X = malloc(sizeof(float) * m * k), *Y = malloc(sizeof(float) * m * n), *R = malloc(sizeof(float) * m * n);
                    float *sx = malloc(sizeof(float) * m * nkb);
                    int16_t *xq = malloc(sizeof(int16_t) * m * ldq);
                    uint16_t *Wb = malloc(2 * (size_t)n * k), *b = malloc(2 * (size_t)n);
                    for (int i = 0; i < m * k; i++) X[i] = (float)(urand() * 2 - 1);
                    for (int i = 0; i < n * k; i++) Wb[i] = qv_f32_to_bf16((float)((urand() * 2 - 1) * 0.05));
                    for (int j = 0; j < n; j++) b[j] = qv_f32_to_bf16((float)(urand() - 0.5));
                    void *mem = amalloc(qv_quant_bytes(bits == 4 ? QV_QUANT_Q4 : QV_QUANT_Q8, n, k));
                    qv_q8_mat W;
                    qv_err err = {0};
                    CHECK((bits == 4 ? qv_q4_quantize_bf16 : qv_q8_quantize_bf16)(&W, mem, Wb, n, k, pool, "w", &err) == QV_OK);
                    qv_linear_q8(pool, Y, n, X, &W, b, m, n, k);
                    qv_i16_quant_x_ref(xq, ldq, sx, nkb, X, k, m, k);
                    const qv_wsrc ws = {.rows_f32 = test_rows_f32, .ctx = &W};
                    qv_i16_gemm_ref(R, n, xq, ldq, sx, nkb, &ws, b, m, n, k);
                    CHECK_MSG(memcmp(Y, R, sizeof(float) * m * n) == 0, "%s m%d n%d k%d: q%d prefill == the 16-bit definition",
                              tabs[ti], m, n, k, bits);
                    free(X); free(Y); free(R); free(sx); free(xq); free(Wb); free(b); free(mem);
                }
    }
    qv_kernels_force(orig);
}

/* 4 bits: |w - d (q - 8)| <= d / 2 (d past the level 7 d), the block's largest |w| at -8 (its sign folded into d), bad input refused */
static void test_roundtrip4(void) {
    enum { K = RT_K };
    float w[K], back[K];
    uint16_t wb[K];
    roundtrip_weights(w, wb);
    wb[140] = qv_f32_to_bf16(9.25f);   /* and a block whose maxabs is positive */
    w[140] = qv_bf16_to_f32(wb[140]);
    void *mem = amalloc(qv_q4_bytes(1, K));
    qv_q8_mat W;
    qv_err err = {0};
    CHECK(qv_q4_quantize_bf16(&W, mem, wb, 1, K, NULL, "w", &err) == QV_OK);
    CHECK(W.bits == 4 && qv_q4_bytes(1, K) < qv_q8_bytes(1, K));
    qv_q8_dequantize_row(back, &W, 0);
    int ok = 1, extreme = 1;
    for (int b = 0; b < K / 32; b++) {
        float d = fabsf(qv_f16_to_f32(W.dh[b])), amax = 0;
        int at = -1;
        for (int t = b * 32; t < b * 32 + 32; t++) {
            if (fabsf(w[t]) > amax) amax = fabsf(w[t]), at = t;
            /* the level 7 d on the far side: values of the other sign past 7.5 d clamp there */
            if (fabsf(back[t] - w[t]) > (fabsf(w[t]) > 7.5f * d ? d : d * 0.5f) * (1 + 1e-3f) + 1e-30f) ok = 0;
        }
        if (amax > 0 && (fabsf(back[at] - w[at]) > amax * 2e-3f || fabsf(d * 8 - amax) > amax * 1e-3f)) extreme = 0;
        if (amax == 0 && d != 0) ok = 0;
    }
    CHECK_MSG(ok, "q4: |w - d (q - 8)| <= d/2 per block (d past 7.5 d)");
    CHECK_MSG(extreme, "q4: the largest |w| of each block is kept to the half scale's rounding");
    wb[77] = 0x7fc0;
    CHECK(qv_q4_quantize_bf16(&W, mem, wb, 1, K, NULL, "w", &err) == QV_ERR_FORMAT);
    CHECK(qv_q4_quantize_bf16(&W, mem, wb, 1, 48, NULL, "w", &err) == QV_ERR_UNSUPPORTED && strstr(err.msg, "--q4"));
    CHECK(qv_q4_bytes(3, 40) == 0 && qv_q4_bytes(0, 32) == 0);
    free(mem);
}

/* decode-sized m on the tiles (the table qv_q8_force picked), 8- or 4-bit weights: every element within f32
 * rounding of the exact per-block integer sums (float64) of the int8 activations and the weights */
static void test_tiles(int bits, int m, int n, int k, int with_bias, qv_pool *pool) {
    float *X = malloc(sizeof(float) * m * k), *Y = malloc(sizeof(float) * m * n), *wr = malloc(sizeof(float) * k);
    uint16_t *Wb = malloc(2 * (size_t)n * k), *b = malloc(2 * (size_t)n);
    int8_t *xq = malloc((size_t)k);
    float *xd = malloc(sizeof(float) * (k / 32));
    for (int i = 0; i < m * k; i++) X[i] = (float)(urand() * 2 - 1);
    for (int i = 0; i < n * k; i++) Wb[i] = qv_f32_to_bf16((float)((urand() * 2 - 1) * 0.05));
    for (int j = 0; j < n; j++) b[j] = qv_f32_to_bf16((float)(urand() - 0.5));
    void *mem = amalloc(qv_q4_bytes(n, k) + qv_q8_bytes(n, k));
    qv_q8_mat W;
    qv_err err = {0};
    CHECK((bits == 4 ? qv_q4_quantize_bf16 : qv_q8_quantize_bf16)(&W, mem, Wb, n, k, pool, "w", &err) == QV_OK);
    qv_linear_q8(pool, Y, n, X, &W, with_bias ? b : NULL, m, n, k);
    int ok = 1;
    for (int i = 0; i < m; i++) {
        qv_q8_quantize_row(xq, xd, X + (size_t)i * k, k);
        for (int j = 0; j < n; j++) {
            qv_q8_dequantize_row(wr, &W, j);
            double e = with_bias ? qv_bf16_to_f32(b[j]) : 0, mag = fabs(e);
            for (int t = 0; t < k; t++) e += (double)xd[t / 32] * xq[t] * wr[t], mag += fabs((double)xd[t / 32] * xq[t] * wr[t]);
            double y = Y[(size_t)i * n + j];
            if (fabs(y - e) > (k / 32 + 2) * 1.2e-7 * mag + 1e-30) {
                if (ok) fprintf(stderr, "  q%d %s m%d n%d k%d [%d][%d]: %.9g vs %.9g\n", bits, qv_q8_kernels_name(), m, n, k, i, j, y, e);
                ok = 0;
            }
        }
    }
    CHECK_MSG(ok, "q%d tiles (%s) m%d n%d k%d: the integer block sums to f32 rounding", bits, qv_q8_kernels_name(), m, n, k);
    free(X); free(Y); free(wr); free(Wb); free(b); free(xq); free(xd); free(mem);
}

int main(void) {
    test_roundtrip();
    test_quant_identical();
    int have_avx2 = qv_q8_force("avx2");
    qv_pool *p1 = qv_pool_create(1), *p3 = qv_pool_create(3);
    static const int ms[] = {1, 2, 3, 5, 16, 17, 33}, ns[] = {1, 7, 31, 33, 100}, ks[] = {32, 64, 96, 3584};
    int c = 0;
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t bb = 0; bb < sizeof ns / sizeof *ns; bb++)
            for (size_t q = 0; q < sizeof ks / sizeof *ks; q++, c++) {
                if (ks[q] == 3584 && ms[a] > 5 && ns[bb] > 33) continue;   /* keep the run short */
                one_case(ms[a], ns[bb], ks[q], c % 2, ns[bb] + (c % 3 == 0 ? 5 : 0), c % 2 ? p3 : p1, have_avx2);
            }
    one_case(64, 300, 512, 1, 301, p3, have_avx2);   /* several panels and work items */
    one_case(1, 1000, 3584, 0, 1000, p3, have_avx2);
    test_i16_path(p3, 8);
    test_i16_path(p3, 4);
    test_roundtrip4();
    static const char *q8tabs[] = {"scalar", "avx2", "avx512", "avx512-emulated"};
    for (int q = 0; q < 4; q++) {   /* small m (decode): the tiles of every table this CPU has, both formats */
        if (q == 3 ? !emu_q8_table_avx512() || !qv_q8_set_table(emu_q8_table_avx512()) : !qv_q8_force(q8tabs[q])) {
            printf("no %s q8 table on this CPU\n", q8tabs[q]);
            continue;
        }
        static const int ms4[] = {1, 2, 3, 5, 15}, ns4[] = {1, 7, 33}, ks4[] = {32, 96, 544, 3584};
        for (int a = 0; a < 5; a++)
            for (int bb = 0; bb < 3; bb++)
                for (int kk = 0; kk < 4; kk++)
                    for (int bits = 4; bits <= 8; bits += 4) test_tiles(bits, ms4[a], ns4[bb], ks4[kk], (a + bb + kk) % 2, q ? p3 : p1);
    }
    qv_q8_force(have_avx2 ? "avx2" : "scalar");
    printf("q8: avx2 vs scalar max |diff| / sum|dx dw qx qw| = %.3g; vs f64 max |err| / sum|x w| = %.3g (%s)\n",
           max_ad, max_rel64, have_avx2 ? "avx2" : "scalar only");
    qv_pool_free(p1);
    qv_pool_free(p3);
    return test_done();
}
