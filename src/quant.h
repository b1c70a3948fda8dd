/* quant.h — 8- and 4-bit weights for the language model (opt-in fast paths --q8 and --q4; llama.cpp Q8_0
 * and Q4_0 style; the 4-bit format is described at qv_q4_bytes, its driver is the same).
 *
 * Format (qv_q8_mat): a weight matrix W [n][k] with k % 32 == 0, per row blocks of 32 weights:
 *   q [n][k]     int8, symmetric, q = nearbyint(w / d) clamped to [-127, 127]
 *   d [n][k/32]  IEEE half block scale, d = maxabs(block) / 127 rounded up to a half (qv_q8_half_scale; 0
 *                for an all-zero block)
 * so w ~= d * q with |w - d q| <= d / 2; 8.5 bits per weight. Quantized once from the bf16 mapping (at
 * load, or once for good by qv quantize: pipeline/qstore.h).
 *
 * qv_linear_q8: Y[m][ldy] (first n columns) = X[m][k] . W^T + b (b bf16, may be NULL). Each row of X is
 * quantized the same way (blocks of 32, per-block scale), then per block an exact integer dot product
 * isum = sum qx qw (|isum| <= 32*127*127 < 2^24, exact in f32) and
 *   y = bias + sum_blocks (dx * dw) * isum          (f32 accumulation)
 * The scalar reference (quant.c) accumulates the blocks in order; AVX2 (quant_avx2.c, the llama.cpp sign
 * trick: sign_epi8 / maddubs_epi16 / madd_epi16 / cvt / fma) does the same integer math with 8 partial
 * float sums, so both agree to f32 rounding of the final accumulation. Relative to the bf16 REF product
 * the error is ~1e-2 (int8 rounding of weights and activations): answers may differ from the reference.
 * Threads split the n output columns (work items taken from an atomic counter, like qv_linear); m == 1
 * streams each weight row once; small m register-blocks 4 rows of X against 2 rows of W over an L2-sized
 * panel of W rows, so each loaded weight block serves 4 rows of X. From m = QV_Q8_I16_M (prefill) the
 * product is the default path's 16-bit integer GEMM (kernels_isa.h qv_gemm_i16_wsrc): X quantized to 12
 * bits per row and 128-wide block, the weights' rows dequantized (d * q) and requantized to 12 bits per
 * block as the GEMM packs them (1/16 of the int8 step: the answers stay those of the 8-bit weights), so
 * prefill runs at the bf16 default path's speed with vpdpwssd / vpmaddwd instead of f32 on dequantized
 * panels (12.4 -> ~20 tokens/s for the 7B on 2 Zen 4 cores), and the activations lose no 8-bit rounding
 * (top-1 against --ref +1.5 to +2.3 points, README: accuracy). When that GEMM cannot run (no scratch, X
 * not finite) the tiles serve any m. Scratch: the caller's thread keeps the quantized X (m*k +
 * m*k/32*4 bytes for the tiles; the 16-bit GEMM its own, kernels.c), grown once and kept for the thread's
 * life; no malloc per call. */
#ifndef QV_QUANT_H
#define QV_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "kernels.h"
#include "threads.h"

typedef enum { QV_QUANT_NONE = 0, QV_QUANT_Q8 = 1, QV_QUANT_Q4 = 2 } qv_quant;

enum { QV_Q8_BLOCK = 32, QV_Q8_I16_M = 16 };

typedef struct {
    int bits;          /* 8 (QV_QUANT_Q8) or 4 (QV_QUANT_Q4) */
    const int8_t *q;   /* 8 bits: [n][k] */
    const uint8_t *q4; /* 4 bits: [n][k/2], per block of 32 16 bytes: element t < 16 in byte t's low nibble,
                          element 16 + t in its high nibble; the value is nibble - 8 (llama.cpp's Q4_0) */
    const uint16_t *dh;/* both: [n][k/32] IEEE half block scales */
    int n, k;
    /* Input columns whose weights are kept exactly (qv_q8_keep; none after quantizing): when qv_linear_q8's
     * outlier split (kernels.h) finds one of them among X's outlier columns, that column's products use
     * these f32 weights instead of d * q, whose int8 error the outlier's size would multiply. */
    int n_keep;
    int keep[QV_OUTLIER_MAX];   /* increasing */
    const float *wk;            /* [n][QV_OUTLIER_MAX]: wk[j][s] = W[j][keep[s]] */
} qv_q8_mat;

/* Bytes a quantized [n][k] matrix takes (q then d, 64-byte aligned parts); 0 when k % 32 != 0, a size is
 * not positive or the product overflows. */
size_t qv_q8_bytes(int64_t n, int64_t k);

/* Quantizes W [n][k] bf16 into mem (qv_q8_bytes(n, k) bytes, 64-byte aligned), threaded over rows;
 * fills *out to point into mem. QV_ERR_UNSUPPORTED when k % 32 != 0; QV_ERR_FORMAT when a weight is
 * not finite (the name is used in messages). */
qv_status qv_q8_quantize_bf16(qv_q8_mat *out, void *mem, const uint16_t *W, int n, int k, qv_pool *pool,
                              const char *name, qv_err *err);

/* 4 bits (--q4): per block of 32, the largest-magnitude weight m (signed) maps to -8: d = half(m / -8),
 * q = clamp(rint(w / d), -8, 7) + 8 with the stored half scale, so |w - d (q - 8)| <= d / 2, except for
 * values of m's other sign past 7.5 |d| (clamped to the level 7 d: error <= |d|); 4.5 bits per weight.
 * Bytes of an [n][k] matrix (q4 then dh, 64-byte aligned parts; 0 as qv_q8_bytes), and the quantization
 * (same contract as qv_q8_quantize_bf16). */
size_t qv_q4_bytes(int64_t n, int64_t k);
qv_status qv_q4_quantize_bf16(qv_q8_mat *out, void *mem, const uint16_t *W, int n, int k, qv_pool *pool,
                              const char *name, qv_err *err);
/* bytes of a matrix in either format (QV_QUANT_Q8 or QV_QUANT_Q4) */
size_t qv_quant_bytes(qv_quant fmt, int64_t n, int64_t k);

/* The channels of a bf16 vector (an RMSNorm weight) whose |w| is an outlier by the activations' rule
 * (kernels_isa.h qv_outlier_cols: above QV_OUTLIER_RATIO x the sampled median, at most QV_OUTLIER_MAX, the
 * largest, increasing): where the activations that norm writes carry outliers,
 * the columns worth keeping exactly in the matrices it feeds. Returns how many (0 for D < 8). */
int qv_q8_outlier_channels(const uint16_t *w, int D, int *cols);

/* Points *out at a matrix already quantized into mem (bits 8 or 4, the layout qv_q8_quantize_bf16 or
 * qv_q4_quantize_bf16 writes; e.g. from a stored file); no kept columns. */
void qv_q8_bind(qv_q8_mat *out, const void *mem, int bits, int n, int k);

/* Bytes of the kept columns of an n-row matrix (n * QV_OUTLIER_MAX floats, 64-byte aligned). */
size_t qv_q8_keep_bytes(int64_t n);
/* W keeps columns cols[0..nc) (increasing, nc <= QV_OUTLIER_MAX) of the bf16 matrix Wbf [n][k] it was
 * quantized from, exactly (widened to f32) in mem (qv_q8_keep_bytes(n)); Wbf NULL: mem holds them already
 * (a stored blob). */
void qv_q8_keep(qv_q8_mat *W, void *mem, const uint16_t *Wbf, const int *cols, int nc);

/* The weights' half block scale of a block whose largest |w| is amax (> 0 finite; 0 -> 0). */
uint16_t qv_q8_half_scale(float amax);
/* One row of activations: x [k] (f32) -> q [k], f32 scales d [k/32] (amax / 127, unrounded). */
void qv_q8_quantize_row(int8_t *q, float *d, const float *w, int k);
/* Row j of W back to f32 (tests). */
void qv_q8_dequantize_row(float *dst, const qv_q8_mat *W, int j);

void qv_linear_q8(qv_pool *pool, float *Y, int ldy, const float *X, const qv_q8_mat *W, const uint16_t *b,
                  int m, int n, int k);

/* Which implementation is used ("scalar", "avx2", "avx512"): the kernel table's (qv_kernels_name: avx2 for
 * the AVX2 table, avx512 -- avx2's with the VNNI 4-bit decode -- for the AVX-512 one, scalar for the scalar
 * one); qv_q8_force("scalar"|"avx2"|"avx512") overrides it (tests; 1 if done). */
const char *qv_q8_kernels_name(void);
int qv_q8_force(const char *name);
struct qv_q8_table;
/* tests: run this table (e.g. one compiled against emulated intrinsics); 1 if done */
int qv_q8_set_table(const struct qv_q8_table *t);

/* ---- internal: what an ISA file provides (quant.c scalar, quant_avx2.c, quant_avx512.c: avx2's with the VNNI
 * 4-bit decode); the kernel table (kernels_isa.h, qv_ktable.q8()) says which one runs ---- */
typedef struct qv_q8_table {
    const char *name;
    /* w [k] bf16 -> q, half scales d (k % 32 == 0); returns 0 if a weight is not finite */
    int (*quant_bf16)(int8_t *q, uint16_t *d, const uint16_t *w, int k);
    void (*quant_f32)(int8_t *q, float *d, const float *x, int k);
    /* Y[i][j] = bias[j] + dot(x_i, w_j) for i < mr <= 4, j < nr <= 4; x rows at xq + i*k, xd + i*k/32;
     * w rows at wq + j*k, wd + j*k/32; bias may be NULL (f32, already widened) */
    void (*tile)(float *Y, int ldy, const int8_t *xq, const float *xd, int mr, const int8_t *wq,
                 const uint16_t *wd, int nr, int k, const float *bias);
    /* dst [k] = d[t/32] * q[t] (f32 products: the weights the 16-bit prefill GEMM quantizes) */
    void (*dequant)(float *dst, const int8_t *q, const uint16_t *d, int k);
    /* the same two for 4-bit rows (q4, dh: qv_q8_mat) */
    void (*tile4)(float *Y, int ldy, const int8_t *xq, const float *xd, int mr, const uint8_t *wq, const uint16_t *wd,
                  int nr, int k, const float *bias);
    void (*dequant4)(float *dst, const uint8_t *q, const uint16_t *d, int k);
    /* Decode (m == 1) with 4-bit weights, optional (NULL: tile4 serves it): the nibbles stay unsigned (0..15,
     * q - 8 + 8) for an unsigned x signed product and the offset is taken out in the integer sums: xp is the
     * quantized row in the order the kernel reads it (gemv4_pairs: per pair of blocks A, B the 16-byte quarters
     * A0-15 B0-15 A16-31 B16-31, a last odd block as it is; else as it is), xs[l] = -8 * (xp[4l] + ... +
     * xp[4l+3]) (qv_q4_prep); Y[j] = bias[j] + sum_blocks dx dw (the block's integer sum of x (q - 8)), j < nr. */
    void (*gemv4)(float *Y, const int8_t *xp, const int32_t *xs, const float *xd, const uint8_t *wq,
                  const uint16_t *wd, int nr, int k, const float *bias);
    int gemv4_pairs;
} qv_q8_table;

/* the scalar definition of one row's product: x . w over k (k % 32 == 0), per block (dx * dw) * the block's
 * integer sum, in block order; 8-bit weights (q4 == 0) or 4-bit ones (the ISA files' odd tails use it) */
float qv_q8_dot_ref(const int8_t *xq, const float *xd, const void *wq, const uint16_t *wd, int k, int q4);

/* gemv4's input from one quantized row xq [k] (k % 32 == 0): xp [k], xs [k/4] (qv_q8_table) */
void qv_q4_prep(int8_t *xp, int32_t *xs, const int8_t *xq, int k, int pairs);

const qv_q8_table *qv_q8_table_avx2(void);   /* NULL when built without AVX2 */
/* avx2's with the AVX-512 VNNI decode (vpdpbusd on 64 nibbles at a time); NULL when not built in */
const qv_q8_table *qv_q8_table_avx512(void);
extern const qv_q8_table qv_q8_scalar;       /* the scalar reference */

#endif
