/* bench_video.c — time and peak memory to turn a 20-minute 1280x720 H.264 clip into the encoder input of
 * all 768 sampled frames (decode, sample, resize, normalize, patchify), with the reference defaults.
 * Floors (issue 4): under 3 minutes and under 1 GB peak RSS on the 2-core build machine.
 *
 *   bench_video [CLIP]     CLIP default: /tmp/qv_bench/long_720p.mp4, made by samples/make_clips.sh if missing
 * Env QV_BENCH_THREADS: threads (default: all CPUs). */
#include <sys/resource.h>
#include <unistd.h>

#include "video.h"
#include "test.h"
#include "threads.h"
#include "preprocess.h"

typedef struct {
    double sum;
    int pairs;
    int64_t rows;
} acc;

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static int on_pair(void *user, int k, const float *px, const qv_media_info *mi) {
    acc *a = user;
    int64_t n = (int64_t)mi->gh * mi->gw;
    for (int64_t r = 0; r < n; r += 37) a->sum += px[r * QV_PATCH_DIM + (r % QV_PATCH_DIM)];
    a->rows += n;
    a->pairs++;
    return 0;
}

int main(int argc, char **argv) {
    const char *clip = argc > 1 ? argv[1] : "/tmp/qv_bench/long_720p.mp4";
    if (argc <= 1 && access(clip, R_OK) != 0) {
        printf("making the 20-minute clip with the ffmpeg CLI (once; kept in /tmp/qv_bench)...\n");
        fflush(stdout);
        double t0 = qv_now();
        int rc = system("bash samples/make_clips.sh /tmp/qv_bench long > /dev/null");
        CHECK_MSG(rc == 0, "make_clips.sh failed");
        if (rc) return test_done();
        printf("  made in %.1f s\n", qv_now() - t0);
    }
    const char *th = getenv("QV_BENCH_THREADS");
    int n_threads = th ? atoi(th) : 0;
    qv_pool *pool = qv_pool_create(n_threads);
    qv_media_opts o = qv_media_default_opts();
    o.pool = pool;
    o.n_threads = n_threads;
    qv_err err = {0};
    qv_media *m = NULL;
    uint64_t rss0 = qv_peak_rss();
    double t0 = qv_now(), c0 = cpu_seconds();
    qv_status st = qv_media_open(&m, clip, &o, &err);
    CHECK_MSG(st == QV_OK, "%s", err.msg);
    if (st) return test_done();
    double t_open = qv_now() - t0;
    const qv_media_info *mi = qv_media_get_info(m);
    acc a = {0};
    st = qv_media_run(m, on_pair, NULL, &a, &err);
    double t_all = qv_now() - t0, cpu = cpu_seconds() - c0;
    uint64_t rss = qv_peak_rss();
    CHECK_MSG(st == QV_OK, "%s", err.msg);
    printf("clip: %s, %dx%d, %lld frames at %.3f fps (%.1f min), codec %s\n", clip, mi->src_w, mi->src_h,
           (long long)mi->total_frames, mi->stream_fps, mi->duration_s / 60, mi->codec);
    printf("sampled %d frames -> %dx%d, grid [%d, %d, %d], %lld patch rows (%lld tokens)\n", mi->n_frames,
           mi->resized_w, mi->resized_h, mi->t, mi->gh, mi->gw, (long long)a.rows, (long long)a.rows / 4);
    printf("threads %d, mode %s, %lld frames decoded, %d seeks\n", qv_pool_size(pool),
           mi->seek_mode ? "seek allowed" : "sequential", (long long)mi->n_decoded, mi->n_seeks);
    printf("time: open (frame table) %.2f s, total %.2f s (%.0f decoded frames/s)\n", t_open, t_all,
           (double)mi->n_decoded / (t_all - t_open));
    printf("cpu time (user+sys, all threads): %.2f s  (wall time depends on the machine's load)\n", cpu);
    printf("peak RSS: %.1f MB (%.1f MB before open)\n", rss / 1e6, rss0 / 1e6);
    printf("checksum %.6f over %d pairs\n", a.sum, a.pairs);
    if (mi->total_frames == 36000) {
        CHECK(mi->n_frames == 768 && mi->resized_w == 420 && mi->resized_h == 224 && a.pairs == 384);
    }
    CHECK_MSG(t_all < 180, "time %.1f s is over the 3-minute floor", t_all);
    CHECK_MSG(rss < 1000000000ull, "peak RSS %.1f MB is over the 1 GB floor", rss / 1e6);
    qv_media_free(m);
    qv_pool_free(pool);
    return test_done();
}
