/* kernels_elt.c — the element-wise kernels of both models (kernels.h, "element-wise"): RMSNorm,
 * LayerNorm, softmax pieces, SiLU, GELU (sigmoid and erf forms), rotate-half rotary, row add.
 *
 * Two sets behind the kernel table (kernels_isa.h, qv_ktable.elt):
 *   qv_elt_ref: the scalar definition — plain loops, libm expf/erff — the spec the others are tested
 *               against (unit_kernels) and what the "scalar" table runs.
 *   qv_elt_v4:  4 floats at a time through GCC/Clang generic vectors (plain C, no ISA flags: the
 *               baseline x86-64 SSE2 registers) with per-lane partial sums and a scalar tail; the AVX2
 *               and AVX-512 tables use it (their .elt is NULL). Its exp is exp4 below, the one copy.
 * Kernels without a vector form (RMSNorm, GELU-erf, rotary) are the scalar definition in both sets. */
#include "kernels.h"
#include "kernels_isa.h"
#include "tensor.h"

#include <math.h>
#include <string.h>

/* ---- scalar definition ---- */

/* y[i] = w * (x[i] / sqrt(mean(x[i]^2) + eps)) for m rows of D (sum of squares in double) */
static void ref_rmsnorm_bf16(float *y, const float *x, const uint16_t *w, int m, int D, float eps) {
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * D;
        float *yi = y + (size_t)i * D;
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)xi[d] * xi[d];
        float r = (float)(1.0 / sqrt(ss / D + eps));
        for (int d = 0; d < D; d++) yi[d] = qv_bf16_to_f32(w[d]) * (xi[d] * r);
    }
}

static void ref_layernorm(float *y, const float *x, const float *w, const float *b, int64_t m, int n, double eps) {
    for (int64_t i = 0; i < m; i++) {
        const float *xi = x + i * n;
        float *yi = y + i * n;
        float s = 0.0f, s2 = 0.0f;
        for (int j = 0; j < n; j++) s += xi[j];
        const float mean = s / n;
        for (int j = 0; j < n; j++) s2 += (xi[j] - mean) * (xi[j] - mean);
        const float rstd = (float)(1.0 / sqrt((double)s2 / n + eps));
        for (int j = 0; j < n; j++) yi[j] = (xi[j] - mean) * rstd * w[j] + b[j];
    }
}

static float ref_row_max(const float *s, int n, float m) {
    for (int j = 0; j < n; j++) m = s[j] > m ? s[j] : m;
    return m;
}

static float ref_exp_sub_sum(float *s, int n, float m) {
    float t = 0.0f;
    for (int j = 0; j < n; j++) {
        s[j] = expf(s[j] - m);
        t += s[j];
    }
    return t;
}

static float ref_softmax(float *s, int n) {
    return 1.0f / ref_exp_sub_sum(s, n, ref_row_max(s + 1, n - 1, s[0]));
}

static void ref_silu_mul(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void ref_quick_gelu(float *y, int n) {
    for (int j = 0; j < n; j++) y[j] = y[j] / (1.0f + expf(-1.702f * y[j]));
}

static void ref_gelu_erf(float *y, int n) {
    for (int j = 0; j < n; j++) y[j] = 0.5f * y[j] * (1.0f + erff(y[j] * 0.70710678118654752f));
}

static void ref_rope_half(float *x, int n_heads, int hd, const float *cs, const float *sn) {
    const int hh = hd / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * hd;
        for (int j = 0; j < hh; j++) {
            float a = v[j], b = v[j + hh];
            v[j] = a * cs[j] - b * sn[j];
            v[j + hh] = b * cs[j] + a * sn[j];
        }
    }
}

static void ref_add(float *y, const float *x, int n) {
    for (int j = 0; j < n; j++) y[j] += x[j];
}

const qv_elt_table qv_elt_ref = {
    .rmsnorm_bf16 = ref_rmsnorm_bf16,
    .layernorm = ref_layernorm,
    .softmax = ref_softmax,
    .row_max = ref_row_max,
    .exp_sub_sum = ref_exp_sub_sum,
    .silu_mul = ref_silu_mul,
    .quick_gelu = ref_quick_gelu,
    .gelu_erf = ref_gelu_erf,
    .rope_half = ref_rope_half,
    .add = ref_add,
};

/* ---- 4 lanes (generic vectors) ---- */

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f load4(const float *p) { v4f v; memcpy(&v, p, sizeof v); return v; }
static inline void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }
static inline v4f splat4(float x) { return (v4f){x, x, x, x}; }
static inline float hsum4(v4f v) { return (v[0] + v[2]) + (v[1] + v[3]); }
/* mask ? a : b, mask lanes all ones or all zeros (a vector comparison's result) */
static inline v4f sel4(v4i mask, v4f a, v4f b) { return (v4f)((mask & (v4i)a) | (~mask & (v4i)b)); }
static inline float hmax4(v4f v) {
    float m = v[0];
    for (int i = 1; i < 4; i++) m = v[i] > m ? v[i] : m;
    return m;
}

/* exp on 4 lanes: Cephes expf's range reduction (by ln2 in two parts) and degree-6 polynomial, scale
 * by 2^n through the exponent bits; relative error ~1e-7; lanes below -87.3 give 0 (so exp(-inf) = 0,
 * which the online softmax relies on), above 88 are clamped. glibc expf is scalar. */
static inline v4f exp4(v4f x) {
    const v4f lo = {-87.33654f, -87.33654f, -87.33654f, -87.33654f};
    const v4f hi = {88.0f, 88.0f, 88.0f, 88.0f};
    v4i under = x < lo, over = x > hi;
    x = (v4f)(((v4i)x & ~under) | ((v4i)lo & under));
    x = (v4f)(((v4i)x & ~over) | ((v4i)hi & over));
    const float magic = 12582912.0f;                       /* 1.5 * 2^23: adds round to nearest */
    v4f n = (x * 1.44269504088896341f + magic) - magic;
    v4f r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    v4f z = r * r;
    v4f y = 1.9875691500e-4f * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * z + r + 1.0f;
    v4i e = (__builtin_convertvector(n, v4i) + 127) << 23;
    y = y * (v4f)e;
    return (v4f)((v4i)y & ~under);
}

static inline float exp_f32(float x) { return exp4(splat4(x))[0]; }

/* LayerNorm over each row of n columns (two passes: mean, then centred variance). */
static void v4_layernorm(float *y, const float *x, const float *w, const float *b, int64_t m, int n, double eps) {
    const int n4 = n & ~3;
    for (int64_t i = 0; i < m; i++) {
        const float *xi = x + i * n;
        float *yi = y + i * n;
        v4f acc = splat4(0.0f);
        int j = 0;
        for (; j < n4; j += 4) acc += load4(xi + j);
        float s = hsum4(acc);
        for (; j < n; j++) s += xi[j];
        const float mean = s / n;
        const v4f vm = splat4(mean);
        acc = splat4(0.0f);
        for (j = 0; j < n4; j += 4) {
            v4f d = load4(xi + j) - vm;
            acc += d * d;
        }
        float s2 = hsum4(acc);
        for (; j < n; j++) s2 += (xi[j] - mean) * (xi[j] - mean);
        const float rstd = (float)(1.0 / sqrt((double)s2 / n + eps));
        const v4f vr = splat4(rstd);
        for (j = 0; j < n4; j += 4) store4(yi + j, (load4(xi + j) - vm) * vr * load4(w + j) + load4(b + j));
        for (; j < n; j++) yi[j] = (xi[j] - mean) * rstd * w[j] + b[j];
    }
}

/* exp(s - max) in place; returns 1 / sum */
static float v4_softmax(float *s, int n) {
    const int n4 = n & ~3;
    int j = 0;
    float mx = s[0];
    if (n4) {
        v4f m = load4(s);
        for (j = 4; j < n4; j += 4) {
            v4f v = load4(s + j);
            m = sel4(v > m, v, m);
        }
        mx = hmax4(m);
    }
    for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    const v4f vmx = splat4(mx);
    v4f acc = splat4(0.0f);
    for (j = 0; j < n4; j += 4) {
        v4f e = exp4(load4(s + j) - vmx);
        store4(s + j, e);
        acc += e;
    }
    float sum = hsum4(acc);
    for (; j < n; j++) {
        float e = exp_f32(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    return 1.0f / sum;
}

/* s[j] = exp(s[j] - m) for j < n; returns the sum. */
static float v4_exp_sub_sum(float *s, int n, float m) {
    v4f acc = {0, 0, 0, 0}, vm = {m, m, m, m};
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        v4f v;
        memcpy(&v, s + j, sizeof v);
        v = exp4(v - vm);
        memcpy(s + j, &v, sizeof v);
        acc += v;
    }
    float t = acc[0] + acc[1] + acc[2] + acc[3];
    if (j < n) {
        v4f v = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
        memcpy(&v, s + j, (size_t)(n - j) * sizeof(float));
        v = exp4(v - vm);
        memcpy(s + j, &v, (size_t)(n - j) * sizeof(float));
        for (int k = 0; k < n - j; k++) t += v[k];
    }
    return t;
}

/* max(m, s[0..n)) on 4 lanes */
static float v4_row_max(const float *s, int n, float m) {
    v4f vm = {m, m, m, m};
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        v4f v;
        memcpy(&v, s + j, sizeof v);
        v4i gt = v > vm;
        vm = (v4f)(((v4i)v & gt) | ((v4i)vm & ~gt));
    }
    float r = vm[0];
    for (int k = 1; k < 4; k++) r = vm[k] > r ? vm[k] : r;
    for (; j < n; j++) r = s[j] > r ? s[j] : r;
    return r;
}

static void v4_silu_mul(float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f x, uu;
        memcpy(&x, g + i, sizeof x);
        memcpy(&uu, u + i, sizeof uu);
        x = x / (1.0f + exp4(-x)) * uu;
        memcpy(g + i, &x, sizeof x);
    }
    for (; i < n; i++) {
        float x = g[i];
        g[i] = x / (1.0f + expf(-x)) * u[i];
    }
}

static void v4_quick_gelu(float *y, int n) {   /* x * sigmoid(1.702 x) */
    const int n4 = n & ~3;
    int j = 0;
    for (; j < n4; j += 4) {
        v4f v = load4(y + j);
        store4(y + j, v / (1.0f + exp4(v * -1.702f)));
    }
    for (; j < n; j++) y[j] = y[j] / (1.0f + exp_f32(-1.702f * y[j]));
}

static void v4_add(float *y, const float *x, int n) {
    const int n4 = n & ~3;
    int j = 0;
    for (; j < n4; j += 4) store4(y + j, load4(y + j) + load4(x + j));
    for (; j < n; j++) y[j] += x[j];
}

const qv_elt_table qv_elt_v4 = {
    .rmsnorm_bf16 = ref_rmsnorm_bf16,
    .layernorm = v4_layernorm,
    .softmax = v4_softmax,
    .row_max = v4_row_max,
    .exp_sub_sum = v4_exp_sub_sum,
    .silu_mul = v4_silu_mul,
    .quick_gelu = v4_quick_gelu,
    .gelu_erf = ref_gelu_erf,
    .rope_half = ref_rope_half,
    .add = v4_add,
};

/* ---- 8 and 16 lanes (AVX2 + FMA: the avx2 table; AVX-512F + FMA: the avx512bf16 table): the online
 * softmax's two row passes, which long-context attention spends a fifth of its time in on 4 lanes, and
 * the vision encoder's softmax and QuickGELU (~10 % of its time on 4 lanes). The
 * same Cephes exp as exp4, lane for lane (FMA may contract its steps: ~1 ulp apart), sums in 8 or 16
 * lanes. One definition, instantiated per width. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define QV_ELT_WIDE(L, TGT)                                                                                   \
    typedef float v##L##f __attribute__((vector_size(4 * L)));                                                \
    typedef int32_t v##L##i __attribute__((vector_size(4 * L)));                                              \
    __attribute__((target(TGT))) static inline v##L##f splat##L(float x) {                                  \
        v##L##f v;                                                                                            \
        for (int k = 0; k < L; k++) v[k] = x;                                                                 \
        return v;                                                                                             \
    }                                                                                                         \
    __attribute__((target(TGT))) static inline v##L##f exp##L(v##L##f x) {                                  \
        const v##L##f lo = splat##L(-87.33654f), hi = splat##L(88.0f);                                       \
        v##L##i under = x < lo, over = x > hi;                                                                \
        x = (v##L##f)(((v##L##i)x & ~under) | ((v##L##i)lo & under));                                         \
        x = (v##L##f)(((v##L##i)x & ~over) | ((v##L##i)hi & over));                                           \
        const float magic = 12582912.0f;                                                                      \
        v##L##f n = (x * 1.44269504088896341f + magic) - magic;                                               \
        v##L##f r = x - n * 0.693359375f;                                                                     \
        r = r - n * -2.12194440e-4f;                                                                          \
        v##L##f z = r * r;                                                                                    \
        v##L##f y = 1.9875691500e-4f * r + 1.3981999507e-3f;                                                  \
        y = y * r + 8.3334519073e-3f;                                                                         \
        y = y * r + 4.1665795894e-2f;                                                                         \
        y = y * r + 1.6666665459e-1f;                                                                         \
        y = y * r + 5.0000001201e-1f;                                                                         \
        y = y * z + r + 1.0f;                                                                                 \
        v##L##i e = (__builtin_convertvector(n, v##L##i) + 127) << 23;                                        \
        y = y * (v##L##f)e;                                                                                   \
        return (v##L##f)((v##L##i)y & ~under);                                                                \
    }                                                                                                         \
    __attribute__((target(TGT))) static float v##L##_exp_sub_sum(float *s, int n, float m) {                \
        v##L##f acc = splat##L(0.0f), vm = splat##L(m);                                                       \
        int j = 0;                                                                                            \
        for (; j + L <= n; j += L) {                                                                          \
            v##L##f v;                                                                                        \
            memcpy(&v, s + j, sizeof v);                                                                      \
            v = exp##L(v - vm);                                                                               \
            memcpy(s + j, &v, sizeof v);                                                                      \
            acc += v;                                                                                         \
        }                                                                                                     \
        if (j < n) { /* the tail: -inf lanes give 0 */                                                        \
            v##L##f v = splat##L(-INFINITY);                                                                  \
            memcpy(&v, s + j, (size_t)(n - j) * sizeof(float));                                               \
            v = exp##L(v - vm);                                                                               \
            memcpy(s + j, &v, (size_t)(n - j) * sizeof(float));                                               \
            acc += v;                                                                                         \
        }                                                                                                     \
        float t = 0.0f;                                                                                       \
        for (int k = 0; k < L; k++) t += acc[k];                                                              \
        return t;                                                                                             \
    }                                                                                                         \
    __attribute__((target(TGT))) static float v##L##_row_max(const float *s, int n, float m) {              \
        v##L##f vm = splat##L(m);                                                                             \
        int j = 0;                                                                                            \
        for (; j + L <= n; j += L) {                                                                          \
            v##L##f v;                                                                                        \
            memcpy(&v, s + j, sizeof v);                                                                      \
            v##L##i gt = v > vm;                                                                              \
            vm = (v##L##f)(((v##L##i)v & gt) | ((v##L##i)vm & ~gt));                                          \
        }                                                                                                     \
        float r = vm[0];                                                                                      \
        for (int k = 1; k < L; k++) r = vm[k] > r ? vm[k] : r;                                                \
        for (; j < n; j++) r = s[j] > r ? s[j] : r;                                                           \
        return r;                                                                                             \
    }                                                                                                         \
    /* exp(s - max) in place; returns 1 / sum */                                                            \
    __attribute__((target(TGT))) static float v##L##_softmax(float *s, int n) {                             \
        return 1.0f / v##L##_exp_sub_sum(s, n, v##L##_row_max(s + 1, n - 1, s[0]));                          \
    }                                                                                                         \
    __attribute__((target(TGT))) static void v##L##_quick_gelu(float *y, int n) { /* x sigmoid(1.702 x) */  \
        int j = 0;                                                                                            \
        for (; j + L <= n; j += L) {                                                                          \
            v##L##f v;                                                                                        \
            memcpy(&v, y + j, sizeof v);                                                                      \
            v = v / (1.0f + exp##L(v * -1.702f));                                                             \
            memcpy(y + j, &v, sizeof v);                                                                      \
        }                                                                                                     \
        if (j < n) {                                                                                          \
            v##L##f v = splat##L(0.0f);                                                                       \
            memcpy(&v, y + j, (size_t)(n - j) * sizeof(float));                                               \
            v = v / (1.0f + exp##L(v * -1.702f));                                                             \
            memcpy(y + j, &v, (size_t)(n - j) * sizeof(float));                                               \
        }                                                                                                     \
    }                                                                                                         \
    const qv_elt_table qv_elt_v##L = {                                                                        \
        .rmsnorm_bf16 = ref_rmsnorm_bf16,                                                                     \
        .layernorm = v4_layernorm,                                                                            \
        .softmax = v##L##_softmax,                                                                            \
        .row_max = v##L##_row_max,                                                                            \
        .exp_sub_sum = v##L##_exp_sub_sum,                                                                    \
        .silu_mul = v4_silu_mul,                                                                              \
        .quick_gelu = v##L##_quick_gelu,                                                                      \
        .gelu_erf = ref_gelu_erf,                                                                             \
        .rope_half = ref_rope_half,                                                                           \
        .add = v4_add,                                                                                        \
    };
QV_ELT_WIDE(8, "avx2,fma")
QV_ELT_WIDE(16, "avx512f,fma")
#endif
