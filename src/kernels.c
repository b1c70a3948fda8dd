/* kernels.c — scalar reference kernels (the spec every SIMD version is tested against) and the
 * dispatch of qv_linear. Placeholder-quality speed: the ISA files replace the hot paths. */
#include "kernels.h"
#include "tensor.h"

#include <stdlib.h>
#include <string.h>

float qv_dot_f32_bf16(const float *x, const uint16_t *y, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += x[i] * qv_bf16_to_f32(y[i]);
    return s;
}

void qv_axpy_bf16(float *y, float a, const uint16_t *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * qv_bf16_to_f32(x[i]);
}

float qv_dot_f32(const float *x, const float *y, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

void qv_bf16_to_f32_row(float *dst, const uint16_t *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = qv_bf16_to_f32(src[i]);
}

void qv_f32_to_bf16_row(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = qv_f32_to_bf16(src[i]);
}

typedef struct {
    float *Y; int ldy; const float *X; const uint16_t *W; const uint16_t *b; int m, n, k;
} linear_args;

static void linear_rows_task(void *ctx, int ith, int nth) {
    linear_args *a = ctx;
    int64_t lo, hi;
    qv_split(a->n, ith, nth, 16, &lo, &hi);
    for (int64_t j = lo; j < hi; j++) {
        const uint16_t *w = a->W + (size_t)j * a->k;
        float bias = a->b ? qv_bf16_to_f32(a->b[j]) : 0.0f;
        for (int i = 0; i < a->m; i++)
            a->Y[(size_t)i * a->ldy + j] = qv_dot_f32_bf16(a->X + (size_t)i * a->k, w, a->k) + bias;
    }
}

void qv_linear(qv_pool *pool, qv_precision prec, float *Y, int ldy, const float *X, const uint16_t *W,
               const uint16_t *b, int m, int n, int k) {
    (void)prec;
    if (m >= 8) {
        /* widen W in panels of rows and let OpenBLAS do the product */
        const int panel = 512;
        float *wf = malloc((size_t)panel * k * sizeof(float));
        if (wf) {
            for (int j0 = 0; j0 < n; j0 += panel) {
                int nj = n - j0 < panel ? n - j0 : panel;
                qv_bf16_to_f32_row(wf, W + (size_t)j0 * k, nj * k);
                qv_sgemm(0, 1, m, nj, k, 1.0f, X, k, wf, k, 0.0f, Y + j0, ldy);
                if (b)
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < nj; j++) Y[(size_t)i * ldy + j0 + j] += qv_bf16_to_f32(b[j0 + j]);
            }
            free(wf);
            return;
        }
    }
    linear_args a = {Y, ldy, X, W, b, m, n, k};
    qv_pool_run(pool, linear_rows_task, &a);
}

const char *qv_kernels_name(void) { return "scalar"; }
int qv_kernels_force(const char *name) { return strcmp(name, "scalar") == 0; }
