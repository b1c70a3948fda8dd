/* unit_kernels.c — every kernel of every ISA this CPU has (scalar, avx2, avx512 forced in turn) against
 * a float64 reference computed here from the same inputs, on awkward sizes:
 *   qv_linear REF:  sum of x * widen(w) in double; |err| <= 1e-5 * (sum |x w| + |b|) per element
 *   qv_linear FAST: the same with x rounded to bf16 first (round to nearest even) — also tight, since
 *                   bf16 x bf16 products are exact in f32; the REF path must NOT look like that. Where the
 *                   ISA has the 16-bit GEMM (large m): bit for bit the scalar qv_i16_gemm_ref, and within
 *                   the bound its block quantization allows of the float64 sum
 *   vector kernels: dot/axpy against double, conversions bit-exact against tensor.h's scalar ones.
 * Buffers are allocated at their exact sizes so an ASan build catches reads past a weight row. */
#include "test.h"
#include "kernels.h"
#include "tensor.h"
#include "threads.h"

#include <stdint.h>

/* src/kernels_avx512.c a second time, against plain-C intrinsics (avx512_emu.h), so that its logic is
 * tested here even when this CPU has no AVX-512; the real build is tested too when the CPU has it. */
#include "kernels_isa.h"
#define _IMMINTRIN_H_INCLUDED 1
#define __AVX512F__ 1
#define __AVX512BW__ 1
#define __AVX512VL__ 1
#define __AVX512BF16__ 1
#include "avx512_emu.h"
#define qv_ktable_avx512 emu_ktable_avx512
#include "../src/kernels_avx512.c"
#undef qv_ktable_avx512

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {   /* uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0) * 2.0 - 1.0);
}
static uint16_t brand(void) { return qv_f32_to_bf16(frand()); }

/* does qv_linear FAST take the 16-bit GEMM for this m on the current table? */
static int uses_i16(int m) {
    const qv_ktable *t = qv_kernels_table();
    return t->gemm_i16 && t->blas_min_m[QV_PREC_FAST] && m >= t->blas_min_m[QV_PREC_FAST];
}

static int same_bits(float a, float b) { return memcmp(&a, &b, 4) == 0 || (a != a && b != b); }

/* FAST through the 16-bit GEMM: Y equals the scalar definition bit for bit, and each element is within
 * sum_t (|x| ew + |w| ex + ex ew) of the float64 sum, ex and ew half a quantization step of x's and w's
 * blocks (plus f32 rounding). Returns the number of bad elements. */
static int check_i16(const float *Y, int ldy, const float *X, const uint16_t *W, const uint16_t *b, int m, int n, int k) {
    int ldq = (k + 1) / 2 * 2, nkb = (k + QV_I16_KB - 1) / QV_I16_KB, bad = 0;
    int16_t *q = malloc(sizeof(int16_t) * (size_t)m * ldq);
    float *sx = malloc(sizeof(float) * (size_t)m * nkb), *R = malloc(sizeof(float) * (size_t)m * n);
    float *sw = malloc(sizeof(float) * (size_t)nkb);
    qv_i16_quant_x_ref(q, ldq, sx, nkb, X, k, m, k);
    const qv_wsrc ws = {.bf16 = W, .ldw = (size_t)k};
    qv_i16_gemm_ref(R, n, q, ldq, sx, nkb, &ws, b, m, n, k);
    for (int j = 0; j < n; j++) {
        for (int bk = 0; bk < nkb; bk++) {   /* w's block scales, as the reference computes them */
            float mx = 0;
            for (int t = bk * QV_I16_KB; t < k && t < (bk + 1) * QV_I16_KB; t++) mx = fmaxf(mx, fabsf(qv_bf16_to_f32(W[(size_t)j * k + t])));
            sw[bk] = mx / QV_I16_QW;
        }
        for (int i = 0; i < m; i++) {
            float y = Y[(size_t)i * ldy + j];
            if (!same_bits(y, R[(size_t)i * n + j])) {
                if (bad++ < 3) fprintf(stderr, "  i16 [%d][%d]: %.9g, scalar definition %.9g\n", i, j, y, R[(size_t)i * n + j]);
                continue;
            }
            if (y != y) continue;   /* NaN as defined (a NaN weight): the column test checks where */
            double s = b ? qv_bf16_to_f32(b[j]) : 0, mag = fabs(s), bound = 0;
            for (int t = 0; t < k; t++) {
                double x = X[(size_t)i * k + t], w = qv_bf16_to_f32(W[(size_t)j * k + t]);
                double ex = 0.5 * sx[(size_t)i * nkb + t / QV_I16_KB] * (1 + 1e-6) + fabs(x) * 1e-6;
                double ew = 0.5 * sw[t / QV_I16_KB] * (1 + 1e-6) + fabs(w) * 1e-6;
                s += x * w;
                mag += fabs(x * w);
                bound += fabs(x) * ew + fabs(w) * ex + ex * ew;
            }
            if (!(fabs(y - s) <= bound + 1e-5 * mag)) {
                if (bad++ < 3) fprintf(stderr, "  i16 [%d][%d]: %.9g vs %.9g, bound %.3g\n", i, j, y, s, bound);
            }
        }
    }
    free(q); free(sx); free(R); free(sw);
    return bad;
}

/* the 16-bit path at its edges: saturated blocks (the largest int32 sum the constants allow), a huge
 * dynamic range, a NaN weight (its column NaN, the rest as defined), a non-finite x (the f32 route) */
static void check_i16_edges(qv_pool *pool) {
    const int m = 18, n = 20, k = 3 * QV_I16_KB + 5;
    float *X = malloc(sizeof(float) * m * k), *Y = malloc(sizeof(float) * m * n);
    uint16_t *W = malloc(sizeof(uint16_t) * n * k);
    for (int i = 0; i < m * k; i++) X[i] = 3.0f;
    for (int i = 0; i < n * k; i++) W[i] = qv_f32_to_bf16(-2.0f);
    qv_linear(pool, QV_PREC_FAST, Y, n, X, W, NULL, m, n, k);
    int ok = 1;
    for (int i = 0; i < m * n; i++) ok &= fabsf(Y[i] + 6.0f * k) <= 1e-5f * 6.0f * k;
    CHECK_MSG(ok, "%s i16 saturated blocks: %g, want %g", qv_kernels_name(), Y[0], -6.0 * k);
    for (int i = 0; i < m * k; i++) X[i] = (i % 7 == 0 ? 1e30f : 1e-30f) * (i % 2 ? 1 : -1);
    for (int i = 0; i < n * k; i++) W[i] = brand();
    W[3 * k + 200] = 0x7fc0;   /* NaN in row 3, second block */
    qv_linear(pool, QV_PREC_FAST, Y, n, X, W, NULL, m, n, k);
    CHECK_MSG(check_i16(Y, n, X, W, NULL, m, n, k) == 0, "%s i16 wide range / NaN weight", qv_kernels_name());
    ok = 1;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) ok &= (j == 3) == (Y[i * n + j] != Y[i * n + j]);
    CHECK_MSG(ok, "%s i16: a NaN weight must make exactly its column NaN", qv_kernels_name());
    W[3 * k + 200] = brand();
    X[2 * k + 7] = INFINITY;
    qv_linear(pool, QV_PREC_FAST, Y, n, X, W, NULL, m, n, k);
    ok = 1;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) ok &= (i == 2) == !isfinite(Y[i * n + j]);
    CHECK_MSG(ok, "%s i16: an infinite x must make exactly its row non-finite", qv_kernels_name());
    free(X); free(Y); free(W);
}

static int check_linear(qv_pool *pool, qv_precision prec, int m, int n, int k, int ldy, int with_bias) {
    float *X = malloc(sizeof(float) * (size_t)m * k + 1);
    uint16_t *W = malloc(sizeof(uint16_t) * (size_t)n * k + 1);
    uint16_t *b = with_bias ? malloc(sizeof(uint16_t) * (size_t)n) : NULL;
    float *Y = malloc(sizeof(float) * (size_t)m * ldy);
    for (long i = 0; i < (long)m * k; i++) X[i] = frand() * 3.0f;
    for (long i = 0; i < (long)n * k; i++) W[i] = brand();
    for (int j = 0; j < n && b; j++) b[j] = brand();
    for (long i = 0; i < (long)m * ldy; i++) Y[i] = 12345.0f;   /* sentinel, also checks no accumulation */
    qv_linear(pool, prec, Y, ldy, X, W, b, m, n, k);
    int bad = 0;
    double worst = 0;
    if (prec == QV_PREC_FAST && uses_i16(m)) {
        bad = check_i16(Y, ldy, X, W, b, m, n, k) ? 1 : 0;
        for (int i = 0; i < m && !bad; i++)
            for (int j = n; j < ldy; j++)
                if (Y[(size_t)i * ldy + j] != 12345.0f) bad = 2;
        CHECK_MSG(!bad, "%s linear FAST (16-bit) m=%d n=%d k=%d ldy=%d bias=%d: %s", qv_kernels_name(), m, n, k, ldy,
                  with_bias, bad == 2 ? "wrote past n" : "mismatch");
        free(X); free(W); free(b); free(Y);
        return !bad;
    }
    for (int i = 0; i < m && !bad; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0, mag = 0;
            for (int t = 0; t < k; t++) {
                float x = X[(size_t)i * k + t];
                if (prec == QV_PREC_FAST) x = qv_bf16_to_f32(qv_f32_to_bf16(x));
                double p = (double)x * qv_bf16_to_f32(W[(size_t)j * k + t]);
                s += p;
                mag += fabs(p);
            }
            if (b) { s += qv_bf16_to_f32(b[j]); mag += fabs(qv_bf16_to_f32(b[j])); }
            double e = fabs(Y[(size_t)i * ldy + j] - s) / (mag + 1e-30);
            if (e > worst) worst = e;
            if (!(e <= 1e-5)) bad = 1;
        }
        for (int j = n; j < ldy; j++)
            if (Y[(size_t)i * ldy + j] != 12345.0f) bad = 2;
    }
    CHECK_MSG(!bad, "%s linear %s m=%d n=%d k=%d ldy=%d bias=%d: %s (worst rel err %.3g)", qv_kernels_name(),
              prec == QV_PREC_FAST ? "FAST" : "REF", m, n, k, ldy, with_bias,
              bad == 2 ? "wrote past n" : "mismatch", worst);
    free(X); free(W); free(b); free(Y);
    return !bad;
}

/* REF must keep X in f32: with X values that bf16 cannot hold, REF differs from the FAST reference. */
static void check_ref_not_rounded(qv_pool *pool) {
    enum { K = 64 };
    float X[K], Yr[1], Yf[1];
    uint16_t W[K];
    for (int t = 0; t < K; t++) { X[t] = 1.0f + 1.0f / 1024.0f; W[t] = qv_f32_to_bf16(1.0f); }
    qv_linear(pool, QV_PREC_REF, Yr, 1, X, W, NULL, 1, 1, K);
    qv_linear(pool, QV_PREC_FAST, Yf, 1, X, W, NULL, 1, 1, K);
    CHECK_MSG(fabsf(Yr[0] - K * (1.0f + 1.0f / 1024.0f)) < 1e-4f, "%s REF rounds X: %g", qv_kernels_name(), Yr[0]);
    CHECK_MSG(fabsf(Yf[0] - K) < 1e-4f, "%s FAST does not round X to bf16: %g", qv_kernels_name(), Yf[0]);
}

static void check_vectors(void) {
    static const int sizes[] = {0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 257, 1000};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int n = sizes[si];
        float *x = malloc(sizeof(float) * (size_t)n + 1), *y = malloc(sizeof(float) * (size_t)n + 1);
        float *z = malloc(sizeof(float) * (size_t)n + 1);
        uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n + 1), *h2 = malloc(sizeof(uint16_t) * (size_t)n + 1);
        double d1 = 0, d2 = 0, m1 = 0, m2 = 0;
        for (int i = 0; i < n; i++) {
            x[i] = frand(); y[i] = frand(); h[i] = brand();
            d1 += (double)x[i] * qv_bf16_to_f32(h[i]); m1 += fabs((double)x[i] * qv_bf16_to_f32(h[i]));
            d2 += (double)x[i] * y[i]; m2 += fabs((double)x[i] * y[i]);
        }
        CHECK_MSG(fabs(qv_dot_f32_bf16(x, h, n) - d1) <= 1e-6 * m1 + 1e-30, "%s dot_f32_bf16 n=%d", qv_kernels_name(), n);
        CHECK_MSG(fabs(qv_dot_f32(x, y, n) - d2) <= 1e-6 * m2 + 1e-30, "%s dot_f32 n=%d", qv_kernels_name(), n);
        /* axpy: y + a*x with one f32 product and one f32 sum per element: bit-exact */
        memcpy(z, y, sizeof(float) * (size_t)n);
        qv_axpy_bf16(z, 0.37f, h, n);
        int ok = 1;
        for (int i = 0; i < n; i++) ok &= z[i] == y[i] + 0.37f * qv_bf16_to_f32(h[i]);
        CHECK_MSG(ok, "%s axpy_bf16 n=%d", qv_kernels_name(), n);
        qv_bf16_to_f32_row(z, h, n);
        ok = 1;
        for (int i = 0; i < n; i++) ok &= z[i] == qv_bf16_to_f32(h[i]);
        CHECK_MSG(ok, "%s bf16_to_f32 n=%d", qv_kernels_name(), n);
        /* IEEE half -> f32: every class (normal, subnormal, zeros, inf; NaN stays NaN) */
        for (int i = 0; i < n; i++) h2[i] = (uint16_t)(h[i] ^ (uint16_t)(i * 40503u));
        if (n > 3) { h2[0] = 0x7c00; h2[1] = 0x8001; h2[2] = 0x7e01; h2[3] = 0x0000; }
        qv_f16_to_f32_row(z, h2, n);
        ok = 1;
        for (int i = 0; i < n; i++) ok &= same_bits(z[i], qv_f16_to_f32(h2[i]));
        CHECK_MSG(ok, "%s f16_to_f32 n=%d", qv_kernels_name(), n);
        /* f32 -> bf16 on values with ties, NaN, infinities, denormals */
        for (int i = 0; i < n; i++) {
            uint32_t u = (uint32_t)(rng >> 20) ^ ((uint32_t)i * 2654435761u);
            frand();
            if (i % 5 == 1) u = (u & 0xffff0000u) | 0x8000u;          /* exact tie */
            if (i % 7 == 2) u = 0x7f800000u | (u & 0x807fffffu) | 1u;  /* NaN */
            if (i % 11 == 3) u = 0x7f800000u | (u & 0x80000000u);     /* inf */
            if (i % 13 == 4) u &= 0x807fffffu;                       /* denormal */
            memcpy(&x[i], &u, 4);
        }
        qv_f32_to_bf16_row(h2, x, n);
        ok = 1;
        for (int i = 0; i < n; i++) ok &= h2[i] == qv_f32_to_bf16(x[i]);
        CHECK_MSG(ok, "%s f32_to_bf16 n=%d", qv_kernels_name(), n);
        free(x); free(y); free(z); free(h); free(h2);
    }
}

/* W given as f32 rows through a rows_f32 callback (quant.c's formats use it): the table's 16-bit GEMM equals
 * the scalar definition bit for bit, odd k and partial 16-row panels included */
static void f32_rows(const qv_wsrc *w, float *dst, int ldd, int64_t r0, int rows, int k0, int kc) {
    const float *W = w->ctx;
    for (int r = 0; r < rows; r++) memcpy(dst + (size_t)r * ldd, W + (size_t)(r0 + r) * w->ldw + k0, (size_t)kc * sizeof(float));
}

static void check_i16_f32rows(void) {
    const qv_ktable *t = qv_kernels_table();
    static const int shapes[][3] = {{16, 1, 1}, {17, 17, 33}, {16, 300, 129}, {40, 33, 257}, {23, 300, 600}};
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        const int m = shapes[c][0], n = shapes[c][1], k = shapes[c][2];
        const int ldq = (k + 1) / 2 * 2, nkb = (k + QV_I16_KB - 1) / QV_I16_KB;
        float *X = malloc(sizeof(float) * m * k), *W = malloc(sizeof(float) * n * k), *sx = malloc(sizeof(float) * m * nkb);
        float *Y = malloc(sizeof(float) * m * n), *R = malloc(sizeof(float) * m * n);
        int16_t *q = malloc(sizeof(int16_t) * m * ldq);
        void *s = NULL;
        if (posix_memalign(&s, 64, t->gemm_i16_scratch)) s = NULL;
        for (int i = 0; i < m * k; i++) X[i] = frand();
        for (int i = 0; i < n * k; i++) W[i] = frand() * (i % 97 == 0 ? 300.0f : 1.0f);
        if (n > 3) W[2 * k] = 0.0f / 0.0f;   /* a NaN weight: its row's outputs are NaN, as defined */
        qv_i16_quant_x_ref(q, ldq, sx, nkb, X, k, m, k);
        const qv_wsrc ws = {.rows_f32 = f32_rows, .ctx = W, .ldw = (size_t)k};
        t->gemm_i16(Y, n, q, ldq, sx, nkb, &ws, NULL, m, n, k, s);
        qv_i16_gemm_ref(R, n, q, ldq, sx, nkb, &ws, NULL, m, n, k);
        int same = 1;
        for (int i = 0; i < m * n; i++) same &= same_bits(Y[i], R[i]);
        CHECK_MSG(same, "%s i16 GEMM, f32 rows, m%d n%d k%d == the scalar definition", qv_kernels_name(), m, n, k);
        free(X); free(W); free(sx); free(Y); free(R); free(q); free(s);
    }
}

/* decode attention (qv_attn_qk, qv_attn_pv_f16): every query row count up to 16, head sizes with and
 * without vector tails, key counts across the lane widths, strided rows; against double sums, and O
 * accumulated onto (not overwritten) */
static void check_attn(void) {
    static const int Rs[] = {1, 2, 3, 7, 8, 9, 14, 16}, hds[] = {7, 16, 33, 80, 128}, ns[] = {1, 5, 16, 17, 100, 256};
    int fails = 0;
    for (size_t a = 0; a < sizeof Rs / sizeof *Rs; a++)
        for (size_t b = 0; b < sizeof hds / sizeof *hds; b++)
            for (size_t c = 0; c < sizeof ns / sizeof *ns && fails < 5; c++) {
                int bad = 0;
                const int R = Rs[a], hd = hds[b], n = ns[c], ldq = hd + 3, ldk = hd + 1, lds = n + 5, ldv = n + 2, ldo = hd + 4;
                float *Q = malloc(sizeof(float) * R * ldq), *K = malloc(sizeof(float) * n * ldk);
                float *S = malloc(sizeof(float) * R * lds), *O = malloc(sizeof(float) * R * ldo), *O0 = malloc(sizeof(float) * R * ldo);
                uint16_t *V = malloc(sizeof(uint16_t) * hd * ldv);
                for (int i = 0; i < R * ldq; i++) Q[i] = frand();
                for (int i = 0; i < n * ldk; i++) K[i] = frand();
                for (int i = 0; i < R * lds; i++) S[i] = 0.5f + 0.5f * frand();   /* probabilities for P V */
                for (int i = 0; i < hd * ldv; i++) V[i] = qv_f32_to_f16(frand());
                for (int i = 0; i < R * ldo; i++) O[i] = O0[i] = frand();
                qv_attn_pv_f16(O, ldo, S, lds, R, V, ldv, hd, n);
                for (int r = 0; r < R; r++)
                    for (int d = 0; d < hd; d++) {
                        double e = O0[r * ldo + d], mag = fabs(e);
                        for (int j = 0; j < n; j++) {
                            double t = (double)S[r * lds + j] * qv_f16_to_f32(V[d * ldv + j]);
                            e += t; mag += fabs(t);
                        }
                        if (!(fabs(O[r * ldo + d] - e) <= 1e-5 * mag)) bad++;
                    }
                qv_attn_qk(S, lds, Q, ldq, R, K, ldk, n, hd);
                for (int r = 0; r < R; r++)
                    for (int j = 0; j < n; j++) {
                        double e = 0, mag = 0;
                        for (int d = 0; d < hd; d++) {
                            double t = (double)Q[r * ldq + d] * K[j * ldk + d];
                            e += t; mag += fabs(t);
                        }
                        if (!(fabs(S[r * lds + j] - e) <= 1e-5 * mag)) bad++;
                    }
                CHECK_MSG(bad == 0, "%s attention kernels R%d hd%d n%d", qv_kernels_name(), R, hd, n);
                fails += bad > 0;
                free(Q); free(K); free(S); free(O); free(O0); free(V);
            }
}

int main(void) {
    static const int ms[] = {1, 2, 3, 7, 15, 16, 17};
    static const int ns[] = {1, 2, 3, 7, 16, 17, 33, 100};
    static const int ks[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 100, 257};
    const char *isas[] = {"scalar", "avx2", "avx512", "avx512-emulated"};
    qv_pool *pool3 = qv_pool_create(3);
    for (int ii = 0; ii < 4; ii++) {
        if (ii == 3) {
            qv_kernels_set_table(emu_ktable_avx512());
            printf("testing src/kernels_avx512.c on emulated intrinsics\n");
        } else if (!qv_kernels_force(isas[ii])) {
            printf("skip %s: not available on this CPU\n", isas[ii]);
            continue;
        }
        printf("testing %s\n", qv_kernels_name());
        check_vectors();
        check_attn();
        check_ref_not_rounded(NULL);
        if (uses_i16(16)) check_i16_edges(pool3);
        if (qv_kernels_table()->gemm_i16) check_i16_f32rows();
        for (int p = 0; p < 2; p++) {
            qv_precision prec = p ? QV_PREC_FAST : QV_PREC_REF;
            int fails = 0;
            for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
                for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++)
                    for (size_t d = 0; d < sizeof ks / sizeof ks[0] && fails < 5; d++) {
                        int m = ms[a], n = ns[c], k = ks[d];
                        int ldy = n + (int)((a + c + d) % 3) * 3;
                        fails += !check_linear((a + d) % 2 ? pool3 : NULL, prec, m, n, k, ldy, (int)((a + c + d) % 2));
                    }
            /* shapes that cross the driver's blocking: k > 512 (k blocks), n > 96 (column blocks), m > 6 */
            check_linear(pool3, prec, 33, 257, 1100, 260, 1);
            check_linear(pool3, prec, 100, 200, 513, 200, 0);
            check_linear(NULL, prec, 1, 1000, 3584, 1000, 1);
            check_linear(pool3, prec, 4, 61, 1024, 64, 1);
            check_linear(pool3, prec, 11, 50, 1100, 50, 1);   /* tile path with k blocks */
        }
    }
    qv_pool_free(pool3);
    return test_done();
}
