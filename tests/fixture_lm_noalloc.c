/* fixture_lm_noalloc.c — after a warm-up, decoding and prefilling allocate nothing: malloc, calloc,
 * realloc and free are counted by interposing glibc's entry points (skipped under AddressSanitizer,
 * which owns them). Runs the tiny checkpoint on both numeric paths with a 2-thread pool. */
#include "test.h"
#include "lm.h"

#if defined(__SANITIZE_ADDRESS__)
#define NOALLOC_SKIP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NOALLOC_SKIP 1
#endif
#endif

#ifndef NOALLOC_SKIP
#include <stdatomic.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static atomic_long n_alloc;
void *malloc(size_t n) { atomic_fetch_add(&n_alloc, 1); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add(&n_alloc, 1); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add(&n_alloc, 1); return __libc_realloc(p, n); }
void free(void *p) { if (p) atomic_fetch_add(&n_alloc, 1); __libc_free(p); }
#endif

int main(void) {
#ifdef NOALLOC_SKIP
    printf("skipped under AddressSanitizer\n");
    return test_done();
#else
    qv_err err;
    char *dir = test_fixture("models/tiny-qwen2vl");
    qv_ckpt *ck = NULL;
    if (qv_ckpt_open(&ck, dir, &err) != QV_OK) {
        CHECK_MSG(0, "open %s: %s", dir, err.msg);
        return test_done();
    }
    free(dir);
    qv_lm *m = NULL;
    CHECK(qv_lm_create(&m, ck, &err) == QV_OK);
    if (!m) return test_done();
    qv_pool *pool = qv_pool_create(2);
    int V = qv_lm_hparams(m)->vocab;
    float *logits = malloc((size_t)V * sizeof *logits);
    enum { N = 300 };
    static int32_t ids[N];
    static int64_t pos[3 * N];
    for (int i = 0; i < N; i++) {
        ids[i] = (i * 7919) % 150000;
        pos[i] = pos[N + i] = pos[2 * N + i] = i;
    }
    for (int pi = 0; pi < 2; pi++) {
        qv_lm_ctx_params cp = qv_lm_ctx_default_params();
        cp.n_ctx = N + 64;
        cp.chunk = 64;
        cp.pool = pool;
        cp.prec = pi ? QV_PREC_FAST : QV_PREC_REF;
        qv_lm_ctx *c = NULL;
        long c0 = atomic_load(&n_alloc);
        CHECK(qv_lm_ctx_create(&c, m, &cp, &err) == QV_OK);
        CHECK_MSG(atomic_load(&n_alloc) > c0, "the allocator is not interposed: the count cannot see anything");
        if (!c) break;
        /* warm-up: per-thread kernel scratch grows to its size on first use */
        CHECK(qv_lm_prefill(c, ids, N - 20, NULL, 0, pos, N, logits, NULL, NULL, &err) == QV_OK);
        CHECK(qv_lm_decode(c, 5, N - 20, logits, &err) == QV_OK);
        long before = atomic_load(&n_alloc);
        for (int k = 0; k < 8; k++) CHECK(qv_lm_decode(c, 7 + k, N - 19 + k, logits, &err) == QV_OK);
        CHECK(qv_lm_prefill(c, ids + N - 11, 11, NULL, 0, pos + N - 11, N, logits, NULL, NULL, &err) == QV_OK);
        long used = atomic_load(&n_alloc) - before;
        printf("%s: %ld allocator calls in 8 decodes and an 11-token prefill\n", pi ? "FAST" : "REF", used);
        CHECK_MSG(used == 0, "%s: %ld allocator calls per-token", pi ? "FAST" : "REF", used);
        qv_lm_ctx_free(c);
    }
    free(logits);
    qv_pool_free(pool);
    qv_lm_free(m);
    qv_ckpt_free(ck);
    return test_done();
#endif
}
