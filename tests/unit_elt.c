/* unit_elt.c — the element-wise kernels (kernels.h, src/kernels_elt.c): the scalar definition against
 * float64 math written here, the 4-lane set against the scalar definition, lengths around the lane
 * width, edge values (-inf in the online softmax, large |x| in the activations), and the table dispatch
 * (the scalar table runs the scalar definition bit for bit). */
#include "kernels.h"
#include "kernels_isa.h"
#include "tensor.h"
#include "test.h"

static unsigned rng = 12345;
static float frand(float s) {
    rng = rng * 1103515245u + 12345u;
    return s * ((float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f);
}

static double max_rel(const float *a, const double *b, int n) {
    double e = 0, mx = 1e-30;
    for (int i = 0; i < n; i++) mx = fabs(b[i]) > mx ? fabs(b[i]) : mx;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / mx;
        e = d > e ? d : e;
    }
    return e;
}

enum { NMAX = 1031 };
static const int lens[] = {1, 3, 4, 5, 8, 17, 64, 1031};

static void check_set(const char *nm, const qv_elt_table *t) {
    static float x[NMAX], y[NMAX], u[NMAX], w[NMAX], b[NMAX], y2[NMAX];
    static double d[NMAX];
    static uint16_t wb[NMAX];
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        const int n = lens[li];
        for (int i = 0; i < n; i++) {
            x[i] = frand(6.0f); u[i] = frand(2.0f); w[i] = 1.0f + frand(0.5f); b[i] = frand(0.3f);
            wb[i] = qv_f32_to_bf16(w[i]);
        }
        /* softmax: exp(s - max) and 1 / sum */
        memcpy(y, x, n * sizeof *y);
        float inv = t->softmax(y, n);
        double mx = x[0], sum = 0;
        for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
        for (int i = 0; i < n; i++) sum += d[i] = exp((double)x[i] - mx);
        CHECK_MSG(max_rel(y, d, n) < 1e-6, "%s softmax n=%d %g", nm, n, max_rel(y, d, n));
        CHECK_MSG(fabs(inv * sum - 1.0) < 1e-6, "%s softmax 1/sum n=%d", nm, n);
        /* row_max and exp_sub_sum; -inf entries give exact zeros */
        CHECK_MSG(t->row_max(x, n, -INFINITY) == (float)mx, "%s row_max n=%d", nm, n);
        CHECK(t->row_max(x, n, 100.0f) == 100.0f);
        memcpy(y, x, n * sizeof *y);
        if (n > 2) y[n - 1] = -INFINITY;
        float s = t->exp_sub_sum(y, n, (float)mx);
        double ds = 0;
        for (int i = 0; i < n; i++) ds += d[i] = (n > 2 && i == n - 1) ? 0.0 : exp((double)x[i] - mx);
        CHECK_MSG(max_rel(y, d, n) < 1e-6 && fabs(s - ds) / ds < 1e-6, "%s exp_sub_sum n=%d", nm, n);
        if (n > 2) CHECK(y[n - 1] == 0.0f);
        /* silu(g) * u */
        memcpy(y, x, n * sizeof *y);
        t->silu_mul(y, u, n);
        for (int i = 0; i < n; i++) d[i] = x[i] / (1.0 + exp(-(double)x[i])) * u[i];
        CHECK_MSG(max_rel(y, d, n) < 1e-6, "%s silu n=%d %g", nm, n, max_rel(y, d, n));
        /* quick GELU and erf GELU */
        memcpy(y, x, n * sizeof *y);
        t->quick_gelu(y, n);
        for (int i = 0; i < n; i++) d[i] = x[i] / (1.0 + exp(-1.702 * x[i]));
        CHECK_MSG(max_rel(y, d, n) < 1e-6, "%s quick_gelu n=%d", nm, n);
        memcpy(y, x, n * sizeof *y);
        t->gelu_erf(y, n);
        for (int i = 0; i < n; i++) d[i] = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
        /* relative to the row's scale, at least 1: 1 + erf(x / sqrt 2) cancels in f32 for x below about -4,
         * where GELU is ~0 and only an absolute error (~|x| 2^-24) means anything */
        double gerr = 0, gscale = 1;
        for (int i = 0; i < n; i++) {
            gerr = fmax(gerr, fabs((double)y[i] - d[i]));
            gscale = fmax(gscale, fabs(d[i]));
        }
        CHECK_MSG(gerr / gscale < 1e-6, "%s gelu_erf n=%d (%g)", nm, n, gerr / gscale);
        /* LayerNorm and RMSNorm (two rows) */
        if (n > 1) {
            t->layernorm(y, x, w, b, 1, n, 1e-6);
            double mean = 0, var = 0;
            for (int i = 0; i < n; i++) mean += x[i];
            mean /= n;
            for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
            var /= n;
            for (int i = 0; i < n; i++) d[i] = (x[i] - mean) / sqrt(var + 1e-6) * w[i] + b[i];
            CHECK_MSG(max_rel(y, d, n) < 1e-5, "%s layernorm n=%d %g", nm, n, max_rel(y, d, n));
        }
        {
            double ss = 0;
            for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
            t->rmsnorm_bf16(y, x, wb, 1, n, 1e-6f);
            for (int i = 0; i < n; i++) d[i] = qv_bf16_to_f32(wb[i]) * x[i] / sqrt(ss / n + 1e-6);
            CHECK_MSG(max_rel(y, d, n) < 1e-6, "%s rmsnorm n=%d", nm, n);
        }
        /* add */
        memcpy(y, x, n * sizeof *y);
        t->add(y, u, n);
        for (int i = 0; i < n; i++) d[i] = (double)x[i] + u[i];
        CHECK_MSG(max_rel(y, d, n) < 1e-7, "%s add n=%d", nm, n);
        /* the 4-lane set against the scalar definition */
        memcpy(y, x, n * sizeof *y);
        memcpy(y2, x, n * sizeof *y);
        t->quick_gelu(y, n);
        qv_elt_ref.quick_gelu(y2, n);
        for (int i = 0; i < n; i++) d[i] = y2[i];
        CHECK_MSG(max_rel(y, d, n) < 1e-6, "%s vs ref quick_gelu n=%d", nm, n);
    }
    /* rotary: 3 heads of 8; a rotation keeps each pair's norm and the angle 0 is the identity */
    float v[24], v0[24], cs[4], sn[4];
    for (int i = 0; i < 24; i++) v[i] = v0[i] = frand(1.0f);
    for (int j = 0; j < 4; j++) { double a = 0.3 * j; cs[j] = (float)cos(a); sn[j] = (float)sin(a); }
    t->rope_half(v, 3, 8, cs, sn);
    for (int h = 0; h < 3; h++)
        for (int j = 0; j < 4; j++) {
            double a = 0.3 * j, p = v0[h * 8 + j], q = v0[h * 8 + j + 4];
            CHECK_MSG(fabs(v[h * 8 + j] - (p * cos(a) - q * sin(a))) < 1e-6 &&
                      fabs(v[h * 8 + j + 4] - (q * cos(a) + p * sin(a))) < 1e-6, "%s rope h=%d j=%d", nm, h, j);
        }
    /* large arguments: sigmoid saturates without NaN */
    float big[5] = {-200.0f, -90.0f, 0.0f, 90.0f, 200.0f}, one[5] = {1, 1, 1, 1, 1};
    t->silu_mul(big, one, 5);
    CHECK_MSG(fabsf(big[0]) < 1e-30f && fabsf(big[1]) < 1e-30f && big[2] == 0.0f && big[3] == 90.0f && big[4] == 200.0f,
              "%s silu saturation %g %g %g %g %g", nm, big[0], big[1], big[2], big[3], big[4]);
}

int main(void) {
    check_set("ref", &qv_elt_ref);
    check_set("v4", &qv_elt_v4);
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) check_set("v8", &qv_elt_v8);
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) check_set("v16", &qv_elt_v16);
    /* dispatch: the scalar table runs the scalar definition, bit for bit */
    if (qv_kernels_force("scalar")) {
        float a[37], b2[37];
        for (int i = 0; i < 37; i++) a[i] = b2[i] = frand(5.0f);
        float ia = qv_softmax_row(a, 37), ib = qv_elt_ref.softmax(b2, 37);
        CHECK(ia == ib && !memcmp(a, b2, sizeof a));
    }
    return test_done();
}
