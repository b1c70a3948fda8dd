/* unit_threads.c — the pool runs every thread index once per run, and qv_split covers [0,n) exactly. */
#include "test.h"
#include "threads.h"

#include <stdatomic.h>

typedef struct { atomic_int hits[64]; atomic_int calls; } ctx_t;

static void task(void *c, int ith, int nth) {
    ctx_t *x = c;
    (void)nth;
    atomic_fetch_add(&x->hits[ith], 1);
    atomic_fetch_add(&x->calls, 1);
}

int main(void) {
    for (int n = 1; n <= 4; n++) {
        qv_pool *p = qv_pool_create(n);
        CHECK(p != NULL);
        CHECK(qv_pool_size(p) == n);
        ctx_t c;
        memset(&c, 0, sizeof c);
        for (int r = 0; r < 100; r++) qv_pool_run(p, task, &c);
        CHECK(atomic_load(&c.calls) == 100 * n);
        for (int i = 0; i < n; i++) CHECK(atomic_load(&c.hits[i]) == 100);
        qv_pool_free(p);
    }
    for (int64_t n = 0; n < 200; n += 7)
        for (int nth = 1; nth <= 5; nth++) {
            int64_t prev = 0;
            for (int i = 0; i < nth; i++) {
                int64_t lo, hi;
                qv_split(n, i, nth, 16, &lo, &hi);
                CHECK(lo == prev && hi >= lo && (lo % 16 == 0 || lo == n));
                prev = hi;
            }
            CHECK(prev == n);
        }
    return test_done();
}
