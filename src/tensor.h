/* tensor.h — the plain tensor view used between layers, dtypes, and bf16/f16 conversions.
 *
 * A qv_tensor never owns its data: it points into a mapping (weights) or a buffer owned elsewhere.
 * Shapes are outermost first, as in safetensors and PyTorch. */
#ifndef QV_TENSOR_H
#define QV_TENSOR_H

#include <stdint.h>
#include <string.h>

#define QV_MAX_DIMS 8

typedef enum {
    QV_F64, QV_F32, QV_F16, QV_BF16,
    QV_I64, QV_I32, QV_I16, QV_I8,
    QV_U64, QV_U32, QV_U16, QV_U8,
    QV_BOOL,
    QV_DTYPE_COUNT
} qv_dtype;

typedef struct qv_tensor {
    const char *name;            /* NUL-terminated, owned by whoever made the view */
    qv_dtype dtype;
    int ndim;                    /* 0..QV_MAX_DIMS */
    int64_t shape[QV_MAX_DIMS];  /* outermost first */
    const void *data;            /* nbytes bytes, little-endian, row-major */
    uint64_t nbytes;
} qv_tensor;

/* Optional observer of intermediate activations (--dump, --dump-layers, tests): a [rows][cols] f32
 * matrix named like the golden files ("vision.block.3", "lm.layer.0"). Called synchronously. */
typedef void (*qv_dump_fn)(void *user, const char *name, const float *data, int64_t rows, int64_t cols);

size_t qv_dtype_size(qv_dtype t);            /* bytes per element */
const char *qv_dtype_name(qv_dtype t);       /* safetensors spelling: "BF16", "F32", ... */
int qv_dtype_parse(const char *s, qv_dtype *out); /* 1 on success */
int64_t qv_tensor_numel(const qv_tensor *t);
/* "[3584, 1280]" into buf */
const char *qv_shape_str(const qv_tensor *t, char *buf, size_t n);

static inline float qv_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* Round to nearest even; NaN stays NaN. */
static inline uint16_t qv_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float qv_f16_to_f32(uint16_t h);
uint16_t qv_f32_to_f16(float f);

/* Converts n elements of any float dtype (F64/F32/F16/BF16) to float32. Returns 0 for other dtypes. */
int qv_convert_to_f32(float *dst, const void *src, qv_dtype t, int64_t n);

#endif
