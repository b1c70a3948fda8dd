/* unit_outlier.c — the outlier split of the FAST and 8-bit products (kernels.h QV_OUTLIER_*, issue 16):
 * X with a few columns ~1000x the rest. The FAST product must then be as close to REF as the same
 * product without those columns is (error bound from the non-outlier terms only: without the split the
 * outliers' bf16 rounding alone is ~1000x that), the same bits with 1 or 3 threads and with every ISA's
 * table, and untouched (no split) for ordinary X and for X holding an Inf. --q8: thread-independent, and
 * within ~0.2 of the non-outlier terms while the outlier columns multiply int8 weights, within 0.03 when the
 * matrix keeps those columns exactly (qv_q8_keep; qv_q8_outlier_channels picks them from a norm weight). */
#include "kernels.h"
#include "quant.h"
#include "tensor.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return (float)((rs >> 40) * (1.0 / 16777216.0) * 2.0 - 1.0);
}

enum { K = 320, N = 70 };
static const int cols[] = {5, 131, 300};

/* max over outputs of |Y - R| / (sum over non-outlier columns of |x w|) */
static double err_vs_rest(const float *Y, const float *R, const float *X, const uint16_t *W, int m) {
    double worst = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < N; j++) {
            double rest = 0;
            for (int c = 0; c < K; c++) {
                int out = c == cols[0] || c == cols[1] || c == cols[2];
                if (!out) rest += fabs((double)X[(size_t)i * K + c] * qv_bf16_to_f32(W[(size_t)j * K + c]));
            }
            double e = fabs((double)Y[(size_t)i * N + j] - R[(size_t)i * N + j]) / rest;
            if (e > worst) worst = e;
        }
    return worst;
}

int main(void) {
    static const int ms[] = {1, 3, 17, 64, 300};
    uint16_t *W = malloc((size_t)N * K * 2);
    float *X = malloc((size_t)300 * K * 4), *R = malloc((size_t)300 * N * 4), *Y = malloc((size_t)300 * N * 4),
          *Y3 = malloc((size_t)300 * N * 4), *Yt = malloc((size_t)300 * N * 4);
    for (int i = 0; i < N * K; i++) W[i] = qv_f32_to_bf16(frand() * 0.1f);
    qv_pool *pool3 = qv_pool_create(3);
    qv_q8_mat Q;
    void *qmem = NULL;
    qv_err err;
    CHECK(posix_memalign(&qmem, 64, qv_q8_bytes(N, K)) == 0);
    CHECK(qv_q8_quantize_bf16(&Q, qmem, W, N, K, NULL, "w", &err) == QV_OK);
    /* Qk keeps columns 5 and 300 exactly, Qa all three (and one that is no outlier: 7) */
    qv_q8_mat Qk = Q, Qa = Q;
    void *kmem = malloc(qv_q8_keep_bytes(N)), *amem = malloc(qv_q8_keep_bytes(N));
    const int keep2[] = {5, 300}, keep4[] = {5, 7, 131, 300};
    qv_q8_keep(&Qk, kmem, W, keep2, 2);
    qv_q8_keep(&Qa, amem, W, keep4, 4);
    CHECK(Q.n_keep == 0 && Qk.n_keep == 2 && Qa.n_keep == 4);
    /* outlier channels of a norm weight: the largest beyond 32x the median, increasing, at most 8 */
    uint16_t nw[64];
    for (int i = 0; i < 64; i++) nw[i] = qv_f32_to_bf16(1.0f + 0.1f * frand());
    nw[3] = qv_f32_to_bf16(-60.0f);
    nw[40] = qv_f32_to_bf16(100.0f);
    nw[50] = qv_f32_to_bf16(20.0f);   /* 20x: not an outlier */
    int oc[QV_OUTLIER_MAX];
    CHECK(qv_q8_outlier_channels(nw, 64, oc) == 2 && oc[0] == 3 && oc[1] == 40);
    nw[3] = qv_f32_to_bf16(1.0f);
    for (int i = 0; i < 12; i++) nw[i * 5] = qv_f32_to_bf16(50.0f + i);   /* 12 outliers: the 8 largest */
    CHECK(qv_q8_outlier_channels(nw, 64, oc) == QV_OUTLIER_MAX && oc[0] == 20 && oc[1] == 25 && oc[7] == 55);
    CHECK(qv_q8_outlier_channels(nw, 4, oc) == 0);
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++) {
        int m = ms[a];
        for (int i = 0; i < m * K; i++) X[i] = frand();
        for (int i = 0; i < m; i++)
            for (int c = 0; c < 3; c++) X[(size_t)i * K + cols[c]] = (c == 1 ? -1000.0f : 1000.0f) * (1.0f + 0.3f * frand());
        qv_linear(NULL, QV_PREC_REF, R, N, X, W, NULL, m, N, K);
        qv_linear(NULL, QV_PREC_FAST, Y, N, X, W, NULL, m, N, K);
        double e = err_vs_rest(Y, R, X, W, m);
        CHECK_MSG(e < 1e-2, "m %d: FAST error %.3g of the non-outlier terms", m, e);
        qv_linear(pool3, QV_PREC_FAST, Y3, N, X, W, NULL, m, N, K);
        CHECK_MSG(memcmp(Y, Y3, (size_t)m * N * 4) == 0, "m %d: 1 vs 3 threads differ", m);
        const char *isas[] = {"scalar", "avx2", "avx512"};
        for (int t = 0; t < 3; t++) {
            if (!qv_kernels_force(isas[t])) continue;
            qv_linear(pool3, QV_PREC_FAST, Yt, N, X, W, NULL, m, N, K);
            double et = err_vs_rest(Yt, R, X, W, m);
            CHECK_MSG(et < 1e-2, "m %d %s: FAST error %.3g", m, isas[t], et);
        }
        if (!qv_kernels_force("avx512") && !qv_kernels_force("avx2")) qv_kernels_force("scalar");
        /* 8-bit: int8 activations and weights, so a looser bound; still far below the outliers' own
         * rounding, and thread-independent */
        qv_linear_q8(NULL, Y, N, X, &Q, NULL, m, N, K);
        double e8 = err_vs_rest(Y, R, X, W, m);
        CHECK_MSG(e8 < 0.3, "m %d: q8 error %.3g of the non-outlier terms", m, e8);   /* ~0.2: the outlier columns keep their int8 weights */
        qv_linear_q8(pool3, Y3, N, X, &Q, NULL, m, N, K);
        CHECK_MSG(memcmp(Y, Y3, (size_t)m * N * 4) == 0, "m %d: q8 1 vs 3 threads differ", m);
        /* the same matrix keeping two of the three outlier columns exactly (qv_q8_keep): those products
         * are exact, so the error falls to what the third column's int8 weights leave */
        qv_linear_q8(NULL, Y, N, X, &Qk, NULL, m, N, K);
        double e8k = err_vs_rest(Y, R, X, W, m);
        CHECK_MSG(e8k < 0.6 * e8, "m %d: q8 keeping 2 of 3 outlier columns: error %.3g (without: %.3g)", m, e8k, e8);
        qv_linear_q8(NULL, Y, N, X, &Qa, NULL, m, N, K);
        double e8a = err_vs_rest(Y, R, X, W, m);
        CHECK_MSG(e8a < 0.03, "m %d: q8 keeping every outlier column: error %.3g", m, e8a);
        qv_linear_q8(pool3, Y3, N, X, &Qa, NULL, m, N, K);
        CHECK_MSG(memcmp(Y, Y3, (size_t)m * N * 4) == 0, "m %d: q8 (kept columns) 1 vs 3 threads differ", m);
        /* an Inf in X: no split, the product is not finite where the reference's is not */
        X[7] = INFINITY;
        qv_linear(NULL, QV_PREC_FAST, Y, N, X, W, NULL, m, N, K);
        CHECK(!isfinite(Y[0]) || Y[0] != Y[0]);
    }
    /* ordinary X: no column is split off (FAST equals its old self: the rounded product, checked against
     * the scalar reference of the FAST numerics with m = 1) */
    for (int i = 0; i < K; i++) X[i] = frand();
    qv_kernels_force("scalar");
    qv_linear(NULL, QV_PREC_FAST, Y, N, X, W, NULL, 1, N, K);
    for (int j = 0; j < N; j++) {
        float s = 0;
        for (int c = 0; c < K; c++) s += qv_bf16_to_f32(qv_f32_to_bf16(X[c])) * qv_bf16_to_f32(W[(size_t)j * K + c]);
        CHECK_MSG(fabsf(s - Y[j]) <= 1e-5f * (1 + fabsf(s)), "col %d: %g vs %g", j, Y[j], s);
    }
    qv_pool_free(pool3);
    free(qmem);
    free(kmem);
    free(amem);
    free(W); free(X); free(R); free(Y); free(Y3); free(Yt);
    return test_done();
}
