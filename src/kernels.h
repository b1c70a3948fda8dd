/* kernels.h — the compute kernels every model layer uses, behind a function table picked at start
 * (scalar reference in kernels.c, AVX2 in kernels_avx2.c, AVX-512/BF16 in kernels_avx512.c).
 *
 * Weights are bf16 (uint16_t bit patterns) used in place from the checkpoint mapping; activations are
 * float32. Two numeric paths:
 *   QV_PREC_REF:  bf16 weights widened exactly to f32, f32 products and sums. Matches the float64
 *                 reference to ~1e-6 relative (unit_kernels checks 1e-5 of sum |x w| per element).
 *   QV_PREC_FAST: activations at about bf16 precision: rounded to bf16 (nearest even), bf16 x bf16
 *                 products (exact in f32) summed in f32 — vdpbf16ps where the CPU has AVX512-BF16, f32
 *                 FMA on the rounded values elsewhere — except for large m on AVX2, where X and W are
 *                 quantized per row and 128-wide k block to 13 and 11 bits and multiplied with vpmaddwd
 *                 (exact int32 block sums, scaled into f32: kernels_isa.h; ~1.4x the f32 GEMM on Zen 3).
 *                 ~1e-3..1e-2 relative to the REF result.
 * qv_linear paths: m == 1 (decode) streams each weight row once (memory-bound kernels); m >= 16 packs
 * bf16 weight panels (widened or as bf16 pairs) for a register-blocked GEMM micro-kernel; in between,
 * dot-product tiles. Threads split the n output columns, so each weight row is read by one thread.
 * Thread safety: any number of threads may call these at once (scratch is per thread); one pool serves
 * one caller at a time (qv_pool_run).
 * Argument order: out, in, weights, sizes. */
#ifndef QV_KERNELS_H
#define QV_KERNELS_H

#include <stdint.h>
#include "threads.h"

typedef enum { QV_PREC_REF = 0, QV_PREC_FAST = 1 } qv_precision;

/* Y[m][ldy] (first n columns) = X[m][k] . W[n][k]^T + b[n]   (b may be NULL; b is bf16)
 * Threaded over the pool. No allocation per call beyond per-thread scratch grown on first use and kept
 * for the thread's life (m*k floats for the caller, 144-256 KiB per worker). Y must not alias X. */
void qv_linear(qv_pool *pool, qv_precision prec, float *Y, int ldy, const float *X, const uint16_t *W,
               const uint16_t *b, int m, int n, int k);

/* C[M][ldc] = alpha * op(A) . op(B) + beta * C, all f32 row-major (cblas_sgemm). OpenBLAS is kept
 * single-threaded (its own threads would fight our pool for the cores): qv_sgemm runs on the calling
 * thread; qv_sgemm_pool splits the larger of M and N across the pool (small products stay serial). */
void qv_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
void qv_sgemm_pool(qv_pool *pool, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Dot products and updates against bf16 vectors (KV cache rows). */
float qv_dot_f32_bf16(const float *x, const uint16_t *y, int n);
void  qv_axpy_bf16(float *y, float a, const uint16_t *x, int n);   /* y += a * x */
float qv_dot_f32(const float *x, const float *y, int n);
void  qv_bf16_to_f32_row(float *dst, const uint16_t *src, int n);
void  qv_f32_to_bf16_row(uint16_t *dst, const float *src, int n);  /* round to nearest even */

/* Which implementation the table picked ("scalar", "avx2", "avx512bf16"); QV_KERNELS=scalar|avx2|avx512
 * in the environment forces one (tests compare them). */
const char *qv_kernels_name(void);
int qv_kernels_force(const char *name);   /* 1 if that ISA is available and now selected */

#endif
