/* gemm.c — the only file that includes cblas.h: f32 matrix products through OpenBLAS.
 *
 * OpenBLAS runs single-threaded here (set once, at first use): threads come from our own pool, which
 * splits the work and calls OpenBLAS from each worker. Two thread pools on two cores would otherwise
 * take turns spinning on each other's cores. */
#include "kernels.h"
#include "kernels_isa.h"

#include <cblas.h>
#include <pthread.h>

static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) { openblas_set_num_threads(1); }

void qv_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    pthread_once(&g_blas_once, blas_init);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

typedef struct {
    int trans_a, trans_b, M, N, K;
    float alpha, beta;
    const float *A, *B;
    int lda, ldb, ldc;
    float *C;
} sgemm_ctx;

/* split the larger of M and N (in blocks of 16) across the pool; each part is an independent sgemm */
static void sgemm_task(void *ctx, int ith, int nth) {
    sgemm_ctx *g = ctx;
    int64_t lo, hi;
    if (g->M >= g->N) {
        qv_split(g->M, ith, nth, 16, &lo, &hi);
        if (hi <= lo) return;
        const float *A = g->trans_a ? g->A + lo : g->A + lo * (int64_t)g->lda;
        cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans, g->trans_b ? CblasTrans : CblasNoTrans,
                    (int)(hi - lo), g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb, g->beta, g->C + lo * (int64_t)g->ldc,
                    g->ldc);
    } else {
        qv_split(g->N, ith, nth, 16, &lo, &hi);
        if (hi <= lo) return;
        const float *B = g->trans_b ? g->B + lo * (int64_t)g->ldb : g->B + lo;
        cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans, g->trans_b ? CblasTrans : CblasNoTrans,
                    g->M, (int)(hi - lo), g->K, g->alpha, g->A, g->lda, B, g->ldb, g->beta, g->C + lo, g->ldc);
    }
}

void qv_sgemm_pool(qv_pool *pool, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    pthread_once(&g_blas_once, blas_init);
    sgemm_ctx g = {trans_a, trans_b, M, N, K, alpha, beta, A, B, lda, ldb, ldc, C};
    if (qv_pool_size(pool) == 1 || (int64_t)M * N * K < (1 << 18)) sgemm_task(&g, 0, 1);
    else qv_pool_run(pool, sgemm_task, &g);
}

void qv_gemm_nt_serial(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc) {
    pthread_once(&g_blas_once, blas_init);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}
