/* kernels.h — the compute kernels every model layer uses, behind a function table picked at start
 * (scalar reference in kernels.c, AVX2 in kernels_avx2.c, AVX-512/BF16 in kernels_avx512.c).
 *
 * Weights are bf16 (uint16_t bit patterns) used in place from the checkpoint mapping; activations are
 * float32. Two numeric paths:
 *   QV_PREC_REF:  bf16 weights widened exactly to f32, f32 products and sums. Matches the float64
 *                 reference to ~1e-6 relative (unit_kernels checks 1e-5 of sum |x w| per element).
 *   QV_PREC_FAST: large m (from 16 rows: prefill, vision) X and W quantized per row and 128-wide k block
 *                 to 12 bits each (+-4095, +-4094) and multiplied as int16 pairs with exact int32 block
 *                 sums scaled into f32 (kernels_isa.h): vpdpwssd on AVX512-VNNI, vpmaddwd on AVX2, the
 *                 scalar definition elsewhere — the same bits on every table; ~1.4x the f32 GEMM on Zen 3,
 *                 ~1e-4 relative error per product. 12/12 bits rather than 13/11: the logits' error on the
 *                 test models fell 10-25 % (qv bench accuracy). Small m (decode): activations rounded to
 *                 bf16 (nearest even), bf16 x bf16 products (exact in f32) summed in f32 (vdpbf16ps
 *                 where the CPU has AVX512-BF16), ~1e-3 relative.
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

/* FAST and outlier channels ("massive activations": a few hidden dims of real Qwen2 checkpoints are
 * 10^2..10^4 x the rest, qv gen-weights --outliers): rounding those to bf16 costs more than the whole
 * rest of a product, since every token carries them. So qv_linear's FAST path first finds the input
 * columns c whose max_i |X[i][c]| exceeds QV_OUTLIER_RATIO x the median over columns of that max (at
 * most QV_OUTLIER_MAX, the largest), multiplies the rest as usual with those columns zeroed, and adds
 * X[:,c] W[:,c]^T in f32 from the exactly widened weights (LLM.int8()'s decomposition, Dettmers et al.
 * 2022). One extra pass over X; a copy of X only when there are outliers; deterministic and independent
 * of the thread count (maxima are exact; each output sums the outlier products in column order). */
enum { QV_OUTLIER_MAX = 8 };
#define QV_OUTLIER_RATIO 32.0f

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

/* Attention against a few query rows (decode: the H/KV heads that share a KV head), memory-bound
 * streams over the KV cache, on the calling thread, f32 sums:
 *   qv_attn_qk:     S[r][j] = Q[r] . K[j] for r < R <= 16, j < n; Q rows of hd floats (stride ldq), K rows
 *                   of hd floats (stride ldk), S rows of stride lds
 *   qv_attn_pv_f16: O[r][d] += sum_{j<n} P[r][j] V[d][j] for r < R <= 16, d < hd; V IEEE half, stored
 *                   transposed (row d of stride ldv: the fast path's value tiles), P rows of stride ldp */
void qv_attn_qk(float *S, int lds, const float *Q, int ldq, int R, const float *K, int ldk, int n, int hd);
void qv_attn_pv_f16(float *O, int ldo, const float *P, int ldp, int R, const uint16_t *V, int ldv, int hd, int n);

/* Dot products and updates against bf16 vectors (KV cache rows). */
float qv_dot_f32_bf16(const float *x, const uint16_t *y, int n);
void  qv_axpy_bf16(float *y, float a, const uint16_t *x, int n);   /* y += a * x */
float qv_dot_f32(const float *x, const float *y, int n);
void  qv_bf16_to_f32_row(float *dst, const uint16_t *src, int n);
void  qv_f32_to_bf16_row(uint16_t *dst, const float *src, int n);  /* round to nearest even */
void  qv_f16_to_f32_row(float *dst, const uint16_t *src, int n);   /* IEEE half -> f32 (exact; the fast V cache) */

/* Element-wise kernels (kernels_elt.c), row-major, in place where there is one operand. The scalar
 * definition is kernels_elt.c's qv_elt_ref; the SIMD tables run a 4-lane version (exp to ~1e-7 relative).
 *   rmsnorm_bf16: y[i] = w * x[i] / sqrt(mean(x[i]^2) + eps), m rows of D, w bf16 (sum in double)
 *   layernorm:    y[i] = (x[i] - mean) / sqrt(var + eps) * w + b, m rows of n
 *   softmax_row:  s = exp(s - max s) in place, returns 1 / sum (the caller scales)
 *   row_max:      max(m, s[0..n));  exp_sub_sum: s = exp(s - m) in place, returns the sum
 *   silu_mul:     g = g * sigmoid(g) * u;  quick_gelu: y = y * sigmoid(1.702 y);  gelu_erf: 0.5 y (1 + erf(y/sqrt2))
 *   rope_half:    rotate-half rotary of n_heads heads of hd in one row: (a, b) -> (a cs - b sn, b cs + a sn)
 *                 for the pairs (j, j + hd/2), cs/sn [hd/2]
 *   add_row:      y += x */
void  qv_rmsnorm_bf16(float *y, const float *x, const uint16_t *w, int m, int D, float eps);
void  qv_layernorm(float *y, const float *x, const float *w, const float *b, int64_t m, int n, double eps);
float qv_softmax_row(float *s, int n);
float qv_row_max(const float *s, int n, float m);
float qv_exp_sub_sum(float *s, int n, float m);
void  qv_silu_mul(float *g, const float *u, int64_t n);
void  qv_quick_gelu(float *y, int n);
void  qv_gelu_erf(float *y, int n);
void  qv_rope_half(float *x, int n_heads, int hd, const float *cs, const float *sn);
void  qv_add_row(float *y, const float *x, int n);

/* Which implementation the table picked ("scalar", "avx2", "avx512bf16"); QV_KERNELS=scalar|avx2|avx512
 * in the environment forces one (tests compare them). */
const char *qv_kernels_name(void);
int qv_kernels_force(const char *name);   /* 1 if that ISA is available and now selected */

#endif
