/* threads.h — a small persistent thread pool: run one function on every worker, wait for all.
 *
 *   qv_pool *p = qv_pool_create(0);              // 0 = number of online CPUs
 *   qv_pool_run(p, fn, ctx);                      // fn(ctx, ith, nth) for ith in 0..nth-1; caller is ith 0
 *   qv_pool_free(p);
 *
 * A NULL pool is valid everywhere and means "run on the calling thread only" (nth = 1). */
#ifndef QV_THREADS_H
#define QV_THREADS_H

#include <stdint.h>

typedef struct qv_pool qv_pool;
typedef void (*qv_task_fn)(void *ctx, int ith, int nth);

qv_pool *qv_pool_create(int n_threads);
void qv_pool_free(qv_pool *p);
int qv_pool_size(const qv_pool *p);
void qv_pool_run(qv_pool *p, qv_task_fn fn, void *ctx);

/* Splits [0, n) into nth contiguous ranges whose starts are multiples of align; range ith -> [lo, hi). */
static inline void qv_split(int64_t n, int ith, int nth, int64_t align, int64_t *lo, int64_t *hi) {
    if (align < 1) align = 1;
    int64_t blocks = (n + align - 1) / align;
    int64_t b0 = blocks * ith / nth, b1 = blocks * (ith + 1) / nth;
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

#endif
