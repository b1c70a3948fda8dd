/* tensor.c — dtype table and conversions (see tensor.h). */
#include "tensor.h"

#include <math.h>
#include <stdio.h>

static const struct { const char *name; size_t size; } k_dtypes[QV_DTYPE_COUNT] = {
    [QV_F64] = {"F64", 8},  [QV_F32] = {"F32", 4},  [QV_F16] = {"F16", 2},  [QV_BF16] = {"BF16", 2},
    [QV_I64] = {"I64", 8},  [QV_I32] = {"I32", 4},  [QV_I16] = {"I16", 2},  [QV_I8] = {"I8", 1},
    [QV_U64] = {"U64", 8},  [QV_U32] = {"U32", 4},  [QV_U16] = {"U16", 2},  [QV_U8] = {"U8", 1},
    [QV_BOOL] = {"BOOL", 1},
};

size_t qv_dtype_size(qv_dtype t) { return (unsigned)t < QV_DTYPE_COUNT ? k_dtypes[t].size : 0; }
const char *qv_dtype_name(qv_dtype t) { return (unsigned)t < QV_DTYPE_COUNT ? k_dtypes[t].name : "?"; }

int qv_dtype_parse(const char *s, qv_dtype *out) {
    for (int i = 0; i < QV_DTYPE_COUNT; i++)
        if (strcmp(s, k_dtypes[i].name) == 0) { *out = (qv_dtype)i; return 1; }
    return 0;
}

int64_t qv_tensor_numel(const qv_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

const char *qv_shape_str(const qv_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

float qv_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { /* subnormal */
            float f = ldexpf((float)man, -24);
            memcpy(&u, &f, 4);
            u |= sign;
        }
    } else if (exp == 31) u = sign | 0x7f800000u | (man << 13);
    else u = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t qv_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    float a = fabsf(f);
    if (isnan(f)) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00;
    if (a < 6.103515625e-05f) { /* subnormal half: round to nearest even in units of 2^-24 */
        float q = nearbyintf(a * 16777216.0f);
        return sign | (uint16_t)q;
    }
    uint32_t m = u & 0x7fffffffu;
    uint32_t r = m + 0xfffu + ((m >> 13) & 1u);
    return sign | (uint16_t)((r >> 13) - (112u << 10));
}

int qv_convert_to_f32(float *dst, const void *src, qv_dtype t, int64_t n) {
    switch (t) {
    case QV_F32: memcpy(dst, src, (size_t)n * 4); return 1;
    case QV_BF16: { const uint16_t *s = src; for (int64_t i = 0; i < n; i++) dst[i] = qv_bf16_to_f32(s[i]); return 1; }
    case QV_F16: { const uint16_t *s = src; for (int64_t i = 0; i < n; i++) dst[i] = qv_f16_to_f32(s[i]); return 1; }
    case QV_F64: { const double *s = src; for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i]; return 1; }
    default: return 0;
    }
}
