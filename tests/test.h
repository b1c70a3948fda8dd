/* test.h — a tiny test harness: CHECK macros that count, and helpers every test uses.
 *
 *   int main(void) { CHECK(1 + 1 == 2); CHECK_MSG(x < 1e-4, "err %g", x); return test_done(); }
 *
 * test_done() prints "N passed, N failed" (the line CI reads) and returns the exit code. */
#ifndef QV_TEST_H
#define QV_TEST_H

#include <math.h>
#include <sys/wait.h>

#include "safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass, t_fail;

#define CHECK(cond) CHECK_MSG(cond, "%s", #cond)
#define CHECK_MSG(cond, ...)                                                   \
    do {                                                                       \
        if (cond) t_pass++;                                                    \
        else {                                                                 \
            t_fail++;                                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

static inline int test_done(void) {
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}

/* $QV_FIXTURES/rel (malloc'd); the fixtures folder defaults to ../shared/fixtures */
static inline char *test_fixture(const char *rel) {
    const char *root = getenv("QV_FIXTURES");
    if (!root) root = "../shared/fixtures";
    size_t n = strlen(root) + strlen(rel) + 2;
    char *s = malloc(n);
    snprintf(s, n, "%s/%s", root, rel);
    return s;
}

/* $QV_TMP/rel (malloc'd); QV_TMP defaults to /tmp */
static inline char *test_tmp(const char *rel) {
    const char *root = getenv("QV_TMP");
    if (!root) root = "/tmp";
    size_t n = strlen(root) + strlen(rel) + 2;
    char *s = malloc(n);
    snprintf(s, n, "%s/%s", root, rel);
    return s;
}

/* relative L2 error ||a-b|| / ||b|| in double */
static inline double test_rel_l2(const float *a, const float *b, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* whole file as a NUL-terminated malloc'd string (NULL when unreadable) */
static inline char *test_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = s ? fread(s, 1, (size_t)n, f) : 0;
    if (s) s[got] = 0;
    fclose(f);
    return s;
}

/* runs a shell command; its exit status (255 when it did not exit normally) */
static inline int test_sh(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 255;
}

/* a golden tensor converted to a malloc'd f32 array (NULL when absent or not a float dtype) */
static inline float *test_gold_f32(const qv_st *st, const char *name, int64_t *numel) {
    const qv_tensor *t = qv_st_get(st, name);
    if (!t) return NULL;
    int64_t n = qv_tensor_numel(t);
    float *f = malloc((size_t)n * sizeof *f);
    if (!f || !qv_convert_to_f32(f, t->data, t->dtype, n)) { free(f); return NULL; }
    if (numel) *numel = n;
    return f;
}

#endif
