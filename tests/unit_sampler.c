/* unit_sampler.c — frame count, indices and sizes (pipeline/sampler.c) against the worked examples of
 * ../shared/spec/qwen2vl-reference.md sections 1-2 and the numbers of golden/preprocess.json. Index lists
 * not in the spec were computed independently with Python, emulating float32 with struct round trips. */
#include "sampler.h"
#include "test.h"

static int same(const int64_t *a, const int64_t *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static int64_t idx[QV_MAX_SAMPLED];

int main(void) {
    qv_err err = {0};
    int n = 0;

    /* spec: 80 frames, n = 6 -> 0, 16, 32, 47, 63, 79 (also golden "a": 80 frames at 25 fps -> 6 frames) */
    {
        const int64_t want[] = {0, 16, 32, 47, 63, 79};
        qv_linspace_round_f32(idx, 0, 79, 6);
        CHECK(same(idx, want, 6));
        qv_sample_opts o = qv_sample_default_opts();
        CHECK(qv_sample_frames(idx, &n, 80, 25.0, &o, &err) == QV_OK);
        CHECK(n == 6 && same(idx, want, 6));
    }
    /* spec: 11459 frames, n = 768 -- float32 linspace differs from double at element 563 */
    {
        qv_linspace_round_f32(idx, 0, 11458, 768);
        CHECK_MSG(idx[563] == 8410, "idx[563] = %lld", (long long)idx[563]);
        double step = 11458.0 / 767.0;
        CHECK(nearbyint(step * 563) == 8411);        /* what double precision would pick */
        CHECK(idx[0] == 0 && idx[767] == 11458);
        int monotonic = 1;
        for (int i = 1; i < 768; i++) monotonic &= idx[i] > idx[i - 1];
        CHECK(monotonic);
    }
    /* round half to even: linspace(0,1,3) = 0, .5, 1 ; linspace(0,3,3) = 0, 1.5, 3 */
    {
        const int64_t w1[] = {0, 0, 1}, w2[] = {0, 2, 3};
        qv_linspace_round_f32(idx, 0, 1, 3);
        CHECK(same(idx, w1, 3));
        qv_linspace_round_f32(idx, 0, 3, 3);
        CHECK(same(idx, w2, 3));
    }
    /* spec: 1280x720, 10 s at 30 fps -> 20 frames of 560x1008, 7200 tokens */
    {
        const int64_t want[] = {0, 16, 31, 47, 63, 79, 94, 110, 126, 142, 157, 173, 189, 205, 220, 236, 252, 268, 283, 299};
        qv_sample_opts o = qv_sample_default_opts();
        CHECK(qv_sample_frames(idx, &n, 300, 30.0, &o, &err) == QV_OK);
        CHECK(n == 20 && same(idx, want, 20));
        double maxp = qv_video_max_pixels(QV_VIDEO_MIN_PIXELS, 0, QV_VIDEO_TOTAL_PIXELS, n);
        int h = 0, w = 0;
        CHECK(qv_smart_resize(&h, &w, 720, 1280, (double)QV_VIDEO_MIN_PIXELS, maxp, &err) == QV_OK);
        CHECK_MSG(h == 560 && w == 1008, "%dx%d", w, h);
        CHECK(n / 2 * (h / 14) * (w / 14) / 4 == 7200);
    }
    /* spec: 20 min at 30 fps -> 768 frames of 224x420 (46080 tokens); larger total: 336x644 (105984) */
    {
        qv_sample_opts o = qv_sample_default_opts();
        CHECK(qv_sample_frames(idx, &n, 36000, 30.0, &o, &err) == QV_OK);
        CHECK(n == 768 && idx[0] == 0 && idx[767] == 35999);
        CHECK(idx[1] == 47 && idx[766] == 35952);
        double maxp = qv_video_max_pixels(QV_VIDEO_MIN_PIXELS, 0, QV_VIDEO_TOTAL_PIXELS, n);
        int h = 0, w = 0;
        CHECK(qv_smart_resize(&h, &w, 720, 1280, (double)QV_VIDEO_MIN_PIXELS, maxp, &err) == QV_OK);
        CHECK_MSG(h == 224 && w == 420, "%dx%d", w, h);
        CHECK(n / 2 * (h / 14) * (w / 14) / 4 == 46080);
        maxp = qv_video_max_pixels(QV_VIDEO_MIN_PIXELS, 0, 90316800, n);
        CHECK(qv_smart_resize(&h, &w, 720, 1280, (double)QV_VIDEO_MIN_PIXELS, maxp, &err) == QV_OK);
        CHECK_MSG(h == 336 && w == 644, "%dx%d", w, h);
        CHECK(n / 2 * (h / 14) * (w / 14) / 4 == 105984);
        /* a user max_pixels above the budget is capped, below it wins */
        CHECK(qv_video_max_pixels(QV_VIDEO_MIN_PIXELS, 10000000, QV_VIDEO_TOTAL_PIXELS, n) ==
              qv_video_max_pixels(QV_VIDEO_MIN_PIXELS, 0, QV_VIDEO_TOTAL_PIXELS, n));
        CHECK(qv_video_max_pixels(QV_VIDEO_MIN_PIXELS, 50000, QV_VIDEO_TOTAL_PIXELS, 20) == 50000);
    }
    /* golden/preprocess.json "a": 320x180, 6 frames: min 100352, max 602112 -> 252x448 (upscaled) */
    {
        double maxp = qv_video_max_pixels(QV_VIDEO_MIN_PIXELS, 0, QV_VIDEO_TOTAL_PIXELS, 6);
        CHECK(maxp == 602112 && QV_VIDEO_MIN_PIXELS == 100352);
        int h = 0, w = 0;
        CHECK(qv_smart_resize(&h, &w, 180, 320, (double)QV_VIDEO_MIN_PIXELS, maxp, &err) == QV_OK);
        CHECK_MSG(h == 252 && w == 448, "%dx%d", w, h);
    }
    /* golden "c": 200x150 image with the image budgets -> 140x196 */
    {
        int h = 0, w = 0;
        CHECK(qv_smart_resize(&h, &w, 150, 200, (double)QV_IMAGE_MIN_PIXELS, (double)QV_IMAGE_MAX_PIXELS, &err) == QV_OK);
        CHECK_MSG(h == 140 && w == 196, "%dx%d", w, h);
        /* tiny image: at least 28 on each side */
        CHECK(qv_smart_resize(&h, &w, 10, 12, (double)QV_IMAGE_MIN_PIXELS, (double)QV_IMAGE_MAX_PIXELS, &err) == QV_OK);
        CHECK(h >= 28 && w >= 28 && h % 28 == 0 && w % 28 == 0 && (double)h * w >= QV_IMAGE_MIN_PIXELS);
        /* aspect ratio above 200 is an error with a message */
        err.msg[0] = 0;
        CHECK(qv_smart_resize(&h, &w, 10, 2500, (double)QV_IMAGE_MIN_PIXELS, (double)QV_IMAGE_MAX_PIXELS, &err) != QV_OK);
        CHECK(strstr(err.msg, "aspect") != NULL);
        CHECK(qv_smart_resize(&h, &w, 0, 10, 1, 1e9, &err) != QV_OK);
    }
    /* counts: short clips, even counts, caps */
    {
        CHECK(qv_sample_count(0, 25, 2, 4, 768) == 0);
        CHECK(qv_sample_count(1, 25, 2, 4, 768) == 1);    /* used whole, padded later */
        CHECK(qv_sample_count(2, 25, 2, 4, 768) == 2);
        CHECK(qv_sample_count(3, 25, 2, 4, 768) == 2);
        CHECK(qv_sample_count(5, 25, 100, 4, 768) == 4);
        CHECK(qv_sample_count(10, 30, 2, 4, 768) == 4);  /* min frames */
        CHECK(qv_sample_count(100000, 30, 2, 4, 768) == 768);
        CHECK(qv_sample_count(100000, 30, 2, 4, 101) == 100); /* max frames floored to even */
        CHECK(qv_sample_count(70, 10, 2, 4, 768) == 14);
        CHECK(qv_sample_count(75, 10, 2, 4, 768) == 16);  /* 15 -> round_half_even(7.5) = 8 -> 16 */
        CHECK(qv_sample_count(65, 10, 2, 4, 768) == 12);  /* 13 -> round_half_even(6.5) = 6 -> 12 */
        for (int64_t t = 2; t < 400; t++) {
            int k = qv_sample_count(t, 7.0, 2.0, 4, 768);
            CHECK_MSG(k >= 2 && k <= t && k % 2 == 0, "total %lld -> %d", (long long)t, k);
        }
        const int64_t w3[] = {0, 3, 6, 9};
        qv_sample_opts o = qv_sample_default_opts();
        CHECK(qv_sample_frames(idx, &n, 10, 30.0, &o, &err) == QV_OK && n == 4 && same(idx, w3, 4));
        CHECK(qv_sample_frames(idx, &n, 3, 30.0, &o, &err) == QV_OK && n == 2 && idx[0] == 0 && idx[1] == 2);
        CHECK(qv_sample_frames(idx, &n, 1, 30.0, &o, &err) == QV_OK && n == 1 && idx[0] == 0);
        CHECK(qv_sample_frames(idx, &n, 0, 30.0, &o, &err) != QV_OK);
        CHECK(qv_sample_frames(idx, &n, 10, 0.0, &o, &err) != QV_OK);
    }
    /* start/end: 80 frames at 25 fps, 1 s .. 2 s -> frames 25..50, 4 frames: 25, 33, 42, 50 */
    {
        const int64_t want[] = {25, 33, 42, 50};
        qv_sample_opts o = qv_sample_default_opts();
        o.start_s = 1.0, o.end_s = 2.0;
        CHECK(qv_sample_frames(idx, &n, 80, 25.0, &o, &err) == QV_OK);
        CHECK(n == 4 && same(idx, want, 4));
        o.start_s = 5.0, o.end_s = -1;                    /* past the end */
        CHECK(qv_sample_frames(idx, &n, 80, 25.0, &o, &err) != QV_OK);
        o.start_s = 2.0, o.end_s = 1.0;                   /* reversed */
        CHECK(qv_sample_frames(idx, &n, 80, 25.0, &o, &err) != QV_OK);
        o.start_s = -1, o.end_s = 100.0;                  /* end past the end: clamped */
        CHECK(qv_sample_frames(idx, &n, 80, 25.0, &o, &err) == QV_OK && n == 6 && idx[5] == 79);
    }
    return test_done();
}
