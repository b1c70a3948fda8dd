/* bench_kernels.c — speed of qv_linear at the 7B shapes (label bench: never run in CI).
 *   prefill: m=512, k=3584, n=3584 and n=18944 -> GFLOP/s, REF and FAST
 *   decode:  m=1, k=3584, n=18944 and n=152064 -> GB/s of bf16 weights read
 * each with 1 and 2 threads; and OpenBLAS sgemm on f32 operands as a yardstick.
 * Usage: bench_kernels [quick]   (quick: fewer repetitions, smaller decode vocab) */
#include "test.h"
#include "core.h"
#include "kernels.h"
#include "tensor.h"
#include "threads.h"

static double best_of(int reps, qv_pool *pool, qv_precision prec, float *Y, const float *X, const uint16_t *W,
                      const uint16_t *b, int m, int n, int k) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = qv_now();
        qv_linear(pool, prec, Y, n, X, W, b, m, n, k);
        t = qv_now() - t;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "quick");
    const int k = 3584;
    const int shapes[][2] = {{512, 3584}, {512, 18944}, {1, 18944}, {1, quick ? 37984 : 152064}};
    size_t maxw = (size_t)152064 * k, maxx = (size_t)512 * k, maxy = (size_t)512 * 18944;
    uint16_t *W = malloc(maxw * 2);
    float *X = malloc(maxx * 4), *Y = malloc(maxy * 4);
    uint16_t *b = malloc(152064 * 2);
    if (!W || !X || !Y || !b) { fprintf(stderr, "out of memory\n"); return 1; }
    for (size_t i = 0; i < maxw; i++) W[i] = qv_f32_to_bf16((float)((i * 2654435761u) % 2001) * 1e-3f - 1.0f);
    for (size_t i = 0; i < maxx; i++) X[i] = (float)((i * 40503u) % 1999) * 1e-3f - 1.0f;
    for (int i = 0; i < 152064; i++) b[i] = qv_f32_to_bf16(0.01f * (i % 7));
    printf("kernels: %s\n", qv_kernels_name());
    for (int th = 1; th <= 2; th++) {
        qv_pool *pool = qv_pool_create(th);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int m = shapes[s][0], n = shapes[s][1];
            for (int p = 0; p < 2; p++) {
                qv_precision prec = p ? QV_PREC_FAST : QV_PREC_REF;
                int reps = m == 1 ? (quick ? 3 : 5) : (quick ? 1 : 2);
                double t = best_of(reps, pool, prec, Y, X, W, b, m, n, k);
                if (m == 1)
                    printf("threads %d %-4s m=%-3d n=%-6d k=%d  %8.2f ms  %6.1f GB/s\n", th, p ? "FAST" : "REF", m, n, k,
                           t * 1e3, (double)n * k * 2 / t / 1e9);
                else
                    printf("threads %d %-4s m=%-3d n=%-6d k=%d  %8.2f ms  %6.1f GFLOP/s\n", th, p ? "FAST" : "REF", m, n,
                           k, t * 1e3, 2.0 * m * n * k / t / 1e9);
                fflush(stdout);
            }
        }
        qv_pool_free(pool);
    }
    free(W); free(X); free(Y); free(b);
    return 0;
}
