/* kernels_isa.h — internal: the function table each ISA file fills (kernels.c, kernels_avx2.c,
 * kernels_avx512.c) and the contract of the linear micro-kernels. Not a public header: only the kernel
 * files include it (kernels*.c, quant.c, gemm.c).
 *
 * qv_linear is driven by kernels.c (threads, cache blocking, scratch); an ISA provides two pieces:
 *   xprep: X[m][k] (f32, row stride ldx) -> a prepared copy, row stride kp elements (kp = k rounded up to
 *          kblock, zero padded), element type f32 or bf16 (xbf16[prec]), possibly permuted inside each
 *          kblock-sized block (the same permutation the tile kernel applies to W when widening it).
 *   tile:  Y[i][j] = (acc ? Y[i][j] : 0) + bias[j] + sum_{t<kk} x[i][t] * W[j][t]
 *          for i < mr <= MR, j < nr <= NR; x points at prepared row 0, k offset k0 (a multiple of kblock);
 *          W at row 0, column k0 (row stride ldw); kk need not be a multiple of kblock (the kernel must not
 *          read W past column kk: the rows come straight from the checkpoint mapping); bias may be NULL.
 * Both numeric paths use the same driver; only xprep and tile differ by precision. */
#ifndef QV_KERNELS_ISA_H
#define QV_KERNELS_ISA_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* The 16-bit integer FAST GEMM (gemm_avx2.h): blocks of QV_I16_KB k values, X quantized to +-QV_I16_QX
 * and W to +-QV_I16_QW per row and block; QV_I16_KB * QX * QW < 2^31, so a block's int32 sum is exact. */
enum { QV_I16_KB = 128, QV_I16_QX = 4095, QV_I16_QW = 4094 };
_Static_assert((long long)QV_I16_KB * QV_I16_QX * QV_I16_QW < 2147483648LL, "a block's int32 sum must not overflow");

/* A weight matrix as the 16-bit GEMM reads it: bf16 rows (bf16 != NULL: row r at bf16 + r * ldw), or rows
 * another format dequantizes (quant.h's 8-bit rows): rows_f32 writes rows [r0, r0 + rows) x columns
 * [k0, k0 + kc) as f32 into dst (row stride ldd). row0 offsets every row (a column range of the product).
 * The GEMM quantizes either to +-QV_I16_QW per row and block from those f32 values (bf16 rows widened). */
typedef struct qv_wsrc {
    const uint16_t *bf16;
    size_t ldw;
    void (*rows_f32)(const struct qv_wsrc *w, float *dst, int ldd, int64_t r0, int rows, int k0, int kc);
    const void *ctx;    /* the format's matrix (rows_f32) */
    int64_t row0;
} qv_wsrc;

/* the scale of a block whose largest |v| has the f32 bits maxbits (sign cleared): max / q, 0 for an
 * all-zero block, NaN when the block holds an Inf or NaN (the output becomes NaN, as the reference's
 * would); *inv = q / max (0 when there is none) */
static inline float qv_i16_scale(uint32_t maxbits, float q, float *inv) {
    if (maxbits >= 0x7f800000u) { *inv = 0.0f; return __builtin_nanf(""); }
    float mx;
    memcpy(&mx, &maxbits, 4);
    if (mx == 0.0f) { *inv = 0.0f; return 0.0f; }
    *inv = q / mx;
    return mx / q;
}

/* one value quantized: rint(v * inv), 0 where there is no scale */
static inline int16_t qv_i16_round(float v, float inv) {
    float r = v * inv;
    return inv == 0.0f || r != r ? 0 : (int16_t)__builtin_lrintf(r);
}

/* The attention kernels' entry points (kernels.h qv_attn_qk / qv_attn_pv_f16) in each ISA file: the query
 * rows in groups of up to 8, each group handed to gfn(Y, ldy, X, ldx, G, B, ldb, a, b) with G a constant
 * (1..8), so the file's always-inline kernel keeps G accumulators in registers. */
#define QV_ATTN_ROW_GROUPS(name, gfn, src_t)                                                                   \
    static void name(float *Y, int ldy, const float *X, int ldx, int R, const src_t *B, int ldb, int a, int b) { \
        for (int r0 = 0; r0 < R; r0 += 8) {                                                                    \
            float *y = Y + (size_t)r0 * ldy;                                                                   \
            const float *x = X + (size_t)r0 * ldx;                                                             \
            switch (R - r0 < 8 ? R - r0 : 8) {                                                                 \
            case 8: gfn(y, ldy, x, ldx, 8, B, ldb, a, b); break;                                               \
            case 7: gfn(y, ldy, x, ldx, 7, B, ldb, a, b); break;                                               \
            case 6: gfn(y, ldy, x, ldx, 6, B, ldb, a, b); break;                                               \
            case 5: gfn(y, ldy, x, ldx, 5, B, ldb, a, b); break;                                               \
            case 4: gfn(y, ldy, x, ldx, 4, B, ldb, a, b); break;                                               \
            case 3: gfn(y, ldy, x, ldx, 3, B, ldb, a, b); break;                                               \
            case 2: gfn(y, ldy, x, ldx, 2, B, ldb, a, b); break;                                               \
            default: gfn(y, ldy, x, ldx, 1, B, ldb, a, b); break;                                              \
            }                                                                                                  \
        }                                                                                                      \
    }

/* the element-wise kernels (kernels.h, kernels_elt.c) */
typedef struct {
    void (*rmsnorm_bf16)(float *y, const float *x, const uint16_t *w, int m, int D, float eps);
    void (*layernorm)(float *y, const float *x, const float *w, const float *b, int64_t m, int n, double eps);
    float (*softmax)(float *s, int n);
    float (*row_max)(const float *s, int n, float m);
    float (*exp_sub_sum)(float *s, int n, float m);
    void (*silu_mul)(float *g, const float *u, int64_t n);
    void (*quick_gelu)(float *y, int n);
    void (*gelu_erf)(float *y, int n);
    void (*rope_half)(float *x, int n_heads, int hd, const float *cs, const float *sn);
    void (*add)(float *y, const float *x, int n);
} qv_elt_table;
extern const qv_elt_table qv_elt_ref;   /* scalar definition */
extern const qv_elt_table qv_elt_v4;    /* 4-lane generic vectors (any x86-64) */
extern const qv_elt_table qv_elt_v8;    /* v4 with 8-lane softmax passes (x86-64, AVX2 + FMA CPUs only) */
extern const qv_elt_table qv_elt_v16;   /* v4 with 16-lane softmax passes (x86-64, AVX-512F + FMA CPUs only) */

typedef void (*qv_xprep_fn)(void *dst, const float *X, int m, int k, int ldx, int kp);
typedef void (*qv_tile_fn)(float *Y, int ldy, const void *x, size_t ldx, const uint16_t *W, size_t ldw,
                           int kk, int mr, int nr, const float *bias, int acc);

typedef struct {
    const char *name;
    int kblock;                 /* prepared X rows are padded to a multiple of this (elements) */
    int kc;                     /* k block of the tile loop (multiple of kblock) */
    int mr, nr;                 /* register tile: rows of X x rows of W (nr <= 16) */
    int xbf16[2];               /* per precision: 1 if prepared X is bf16, 0 if f32 */
    qv_xprep_fn xprep[2];       /* per precision */
    qv_tile_fn tile[2];         /* per precision */
    /* m == 1 (decode), per precision: y[j] = bias[j] + x . W[j] for j < n, x prepared as for tile (one row),
     * full k; NULL: the driver uses tile */
    void (*gemv[2])(float *y, const void *x, const uint16_t *W, size_t ldw, int k, int n, const uint16_t *bias);
    /* large m: Y[m][ldy] (columns [0, n)) = X . W[n][ldw]^T + bias, on the calling thread, with scratch of
     * gemm_scratch bytes (per thread); per precision; NULL: OpenBLAS on widened panels. X is f32 [m][ldx]
     * (FAST: already rounded to bf16 values) or, when gemm_xbf16[prec], bf16 [m][ldx] with ldx = k rounded
     * up to even and a zero in the padding column. */
    void (*gemm[2])(float *Y, int ldy, const void *X, int ldx, const uint16_t *W, size_t ldw, const uint16_t *bias,
                    int m, int n, int k, void *scratch);
    int gemm_xbf16[2];
    size_t gemm_scratch;
    /* FAST, large m, where no bf16 dot product is faster (NULL: not offered): X quantized once per call by
     * xquant_i16 to int16 [m][ldq] (ldq = k rounded up to even) plus block scales sx [m][nkb] (nkb = k
     * blocks of QV_I16_KB; returns -1 when X holds a non-finite value: the caller takes the f32 route),
     * then gemm_i16 over columns [0, n) on the calling thread with gemm_i16_scratch bytes. Same bits as
     * the scalar qv_i16_quant_x_ref / qv_i16_gemm_ref below. */
    int (*xquant_i16)(int16_t *q, int ldq, float *sx, int nkb, const float *X, int ldx, int m, int k);
    void (*gemm_i16)(float *Y, int ldy, const int16_t *Xq, int ldq, const float *sx, int nkb, const qv_wsrc *W,
                     const uint16_t *bias, int m, int n, int k, void *scratch);
    size_t gemm_i16_scratch;
    int blas_min_m[2];          /* per precision: m from which W panels are widened for OpenBLAS (0: never) */
    void (*round_bf16)(float *dst, const float *src, int n);   /* dst = widen(bf16(src)), RNE */
    float (*dot_f32_bf16)(const float *x, const uint16_t *y, int n);
    void (*axpy_bf16)(float *y, float a, const uint16_t *x, int n);
    float (*dot_f32)(const float *x, const float *y, int n);
    void (*bf16_to_f32)(float *dst, const uint16_t *src, int n);
    void (*f32_to_bf16)(uint16_t *dst, const float *src, int n);
    void (*f16_to_f32)(float *dst, const uint16_t *src, int n);   /* exact */
    /* attention against few query rows (decode), kernels.h qv_attn_qk / qv_attn_pv_f16; every table has them */
    void (*attn_qk)(float *S, int lds, const float *Q, int ldq, int R, const float *K, int ldk, int n, int hd);
    void (*attn_pv_f16)(float *O, int ldo, const float *P, int ldp, int R, const uint16_t *V, int ldv, int hd, int n);
    const qv_elt_table *elt;    /* element-wise kernels; NULL: qv_elt_v4 */
    /* the 8- and 4-bit weight kernels (quant.h) that go with this table; NULL or a NULL result: the scalar ones */
    const struct qv_q8_table *(*q8)(void);
} qv_ktable;

/* kernels.c: per-thread scratch of at least bytes (64-byte aligned), grown on demand and kept for the
 * thread's life (freed at thread exit); NULL when out of memory. Slot 0: the caller's prepared X, slot
 * 1: a worker's panel. qv_linear and qv_linear_q8 share the slots (they never nest). */
void *qv_kernel_scratch(int slot, size_t bytes);

/* gemm.c: C[M][ldc] = A[M][K] . B[N][K]^T on the calling thread (OpenBLAS, single-threaded) */
void qv_gemm_nt_serial(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);

/* kernels.c: the scalar definition of the 16-bit FAST GEMM (for tests; see QV_I16_KB above): per row
 * and block of QV_I16_KB k values, s = max|v| / Q (0 for zeros, NaN if not finite) and q = rint(v * (Q /
 * max|v|)); a block's exact integer sum c gives Y = fma((float)c, sx * sw, Y), blocks in k order, Y
 * starting at the bias (or 0). */
int qv_i16_quant_x_ref(int16_t *q, int ldq, float *sx, int nkb, const float *X, int ldx, int m, int k);
void qv_i16_gemm_ref(float *Y, int ldy, const int16_t *Xq, int ldq, const float *sx, int nkb, const qv_wsrc *W,
                     const uint16_t *bias, int m, int n, int k);
/* kernels.c: Y[m][ldy] (columns [0, n)) = X[m][k] . W^T + b through the table's 16-bit GEMM (X quantized
 * per row and block, threads over columns), for quant.c's formats; no outlier split (the caller's). 0 when
 * it cannot run (no 16-bit GEMM, no scratch, X not finite): the caller takes its own route. */
int qv_gemm_i16_wsrc(qv_pool *pool, float *Y, int ldy, const float *X, const qv_wsrc *W, const uint16_t *b, int m,
                     int n, int k);
/* the column block [k0, k0 + kc) of W's row r as f32 (kc <= QV_I16_KB) */
static inline void qv_wsrc_row(float *dst, const qv_wsrc *W, int64_t r, int k0, int kc) {
    if (W->bf16)
        for (int t = 0; t < kc; t++) {
            uint32_t u = (uint32_t)W->bf16[(size_t)(W->row0 + r) * W->ldw + k0 + t] << 16;
            memcpy(dst + t, &u, 4);
        }
    else
        W->rows_f32(W, dst, kc, W->row0 + r, 1, k0, kc);
}

/* kernels.c: the outlier split of qv_linear's FAST path (kernels.h, QV_OUTLIER_*), for the other drivers
 * (quant.c): finds the outlier columns of X[m][k] (cols, increasing; returns how many, 0 = none: use X as
 * it is) and then points *xz at X with those columns zeroed ([m][k], scratch slot 3) and *xs at their
 * values [m][QV_OUTLIER_MAX]; the caller adds sum_s xs[i][s] W[j][cols[s]] to Y[i][j] after the product. */
int qv_outlier_split(qv_pool *pool, const float *X, int m, int k, int *cols, const float **xz, const float **xs);
/* The outlier columns of per-column maxima cm[k] (>= 0): those above QV_OUTLIER_RATIO x the median of a
 * regular sample of at most 512 columns, at most QV_OUTLIER_MAX (the largest; ties: the lower column), in
 * increasing order; 0 when k < 8, the threshold is not positive and finite, or a picked max is Inf. */
int qv_outlier_cols(const float *cm, int k, int *cols);
/* Y[i][j] += sum over s < no of xs[i][s] * w[j][s], for rows i < m and columns j < nj (Y row stride ldy; xs rows
 * of QV_OUTLIER_MAX): the outlier columns' exact products, summed in column order and added last (qv_linear
 * and qv_linear_q8 alike, each with its own widened weights w) */
void qv_outlier_add(float *Y, int ldy, int m, const float *xs, const float (*w)[QV_OUTLIER_MAX], int nj, int no);

/* Tests only: run everything on this table (e.g. the AVX-512 file built against emulated intrinsics). */
void qv_kernels_set_table(const qv_ktable *t);
const qv_ktable *qv_kernels_table(void);

/* NULL when the file was built without that ISA (non-x86 targets). The caller checks the CPU. */
const qv_ktable *qv_ktable_avx2(void);
const qv_ktable *qv_ktable_avx512(void);

#endif
