/* fixture_video.c — decoding across containers and codecs, odd clips and damaged files (pipeline/video.c).
 * The clips are made by samples/make_clips.sh with the ffmpeg command line into $QV_TMP/clips. Checks:
 *  - every sampled frame equals the ffmpeg command line's decode of the same frame number (select=eq(n,K),
 *    rgb24) within 1 level mean absolute difference: frame identity (index = presentation rank) and RGB
 *    conversion, in mp4/mkv/mov/avi/webm with H.264, MPEG-4, VP9, HEVC and AV1 where encoders exist;
 *  - WebM (no frame count) and VFR clips give the true frame count and the frames' own timestamps;
 *  - seek mode gives byte-identical frames to sequential mode (forced, and chosen automatically);
 *  - 1- and 3-frame clips, still images; truncated/corrupt/garbage/empty files give a clear error or the
 *    frames that decode, never a crash or a hang (alarm). */
#include <signal.h>
#include <unistd.h>

#include "video.h"
#include "test.h"
#include "preprocess.h"

static char clips[512];

typedef struct {
    uint8_t *frames;   /* [n][h][w][3] */
    size_t fsz;
    int n_frames, n_pairs;
    int64_t idx[1024];
    double pts[1024];
    int t, gh, gw, n_seeks;
    int64_t n_decoded;
    int64_t total;
    double fps;
    int is_image;
    float px_sum;
} capture;

static int cap_frame(void *user, int j, const uint8_t *rgb, const uint8_t *res, const qv_media_info *mi) {
    capture *c = user;
    if (j < 1024) memcpy(c->frames + (size_t)j * c->fsz, rgb, c->fsz);
    c->n_frames++;
    return 0;
}

static int cap_pair(void *user, int k, const float *px, const qv_media_info *mi) {
    capture *c = user;
    CHECK(k == c->n_pairs);
    for (int i = 0; i < 1176; i += 97) c->px_sum += px[i];
    c->n_pairs++;
    return 0;
}

/* Decodes clip name with the given mode; returns status, fills c (caller frees c->frames). */
static qv_status decode(const char *name, int mode, double fps, capture *c, qv_err *err) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", clips, name);
    memset(c, 0, sizeof *c);
    qv_media_opts o = qv_media_default_opts();
    o.mode = mode;
    if (fps > 0) o.fps = fps;
    o.n_threads = 2;
    qv_media *m = NULL;
    qv_status st = qv_media_open(&m, path, &o, err);
    if (st) return st;
    const qv_media_info *mi = qv_media_get_info(m);
    c->fsz = (size_t)mi->src_w * mi->src_h * 3;
    c->frames = malloc(c->fsz * (size_t)(mi->n_frames < 1024 ? mi->n_frames : 1024));
    st = qv_media_run(m, cap_pair, cap_frame, c, err);
    for (int j = 0; j < mi->n_frames && j < 1024; j++) c->idx[j] = mi->indices[j], c->pts[j] = mi->pts_ms[j];
    c->t = mi->t, c->gh = mi->gh, c->gw = mi->gw, c->n_seeks = mi->n_seeks, c->total = mi->total_frames;
    c->n_decoded = mi->n_decoded;
    c->fps = mi->stream_fps, c->is_image = mi->is_image;
    if (!st) {
        CHECK_MSG(c->n_frames == mi->n_frames, "%s: %d frames produced of %d", name, c->n_frames, mi->n_frames);
        CHECK_MSG(c->n_pairs == mi->t, "%s: %d pairs of %d", name, c->n_pairs, mi->t);
    }
    qv_media_free(m);
    return st;
}

/* Worst per-frame mean abs diff against the ffmpeg command line's frames number idx[0..n). */
static double vs_ffmpeg(const char *name, const capture *c, int n) {
    char sel[8192] = "", out[700], cmd[10000];
    size_t l = 0;
    for (int j = 0; j < n; j++) l += snprintf(sel + l, sizeof sel - l, "%seq(n\\,%lld)", j ? "+" : "", (long long)c->idx[j]);
    snprintf(out, sizeof out, "%s/ref.rgb", clips);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -hide_banner -loglevel error -nostdin -y -i '%s/%s' -vf \"select='%s'\" -fps_mode passthrough "
             "-f rawvideo -pix_fmt rgb24 '%s'",
             clips, name, sel, out);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
    FILE *f = fopen(out, "rb");
    if (!f) return 1e9;
    uint8_t *ref = malloc(c->fsz);
    double worst = 0;
    /* repeated indices (substitutes) appear once in the reference: walk distinct indices */
    int64_t prev = -1;
    for (int j = 0; j < n; j++) {
        if (c->idx[j] == prev) continue;
        prev = c->idx[j];
        if (fread(ref, 1, c->fsz, f) != c->fsz) {
            worst = 1e9;
            CHECK_MSG(0, "%s: ffmpeg gave fewer frames than sampled (frame %lld)", name, (long long)c->idx[j]);
            break;
        }
        double s = 0;
        const uint8_t *a = c->frames + (size_t)j * c->fsz;
        for (size_t i = 0; i < c->fsz; i++) s += abs((int)a[i] - (int)ref[i]);
        if (s / (double)c->fsz > worst) worst = s / (double)c->fsz;
    }
    free(ref);
    fclose(f);
    return worst;
}

static int exists(const char *name) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", clips, name);
    return access(path, R_OK) == 0;
}

static void check_clip(const char *name, int64_t total, int want_n) {
    if (!exists(name)) {
        printf("%s: not made (no encoder), skipped\n", name);
        return;
    }
    capture a, b;
    qv_err err = {0};
    qv_status st = decode(name, QV_MEDIA_SEQUENTIAL, 0, &a, &err);
    CHECK_MSG(st == QV_OK, "%s: %s", name, err.msg);
    if (st) { free(a.frames); return; }
    CHECK_MSG(a.total == total, "%s: total %lld, want %lld", name, (long long)a.total, (long long)total);
    CHECK_MSG(a.n_frames == want_n, "%s: %d frames, want %d", name, a.n_frames, want_n);
    CHECK(a.t == (want_n + 1) / 2);
    for (int j = 1; j < a.n_frames; j++) CHECK(a.idx[j] > a.idx[j - 1]);
    double mad = vs_ffmpeg(name, &a, a.n_frames);
    CHECK_MSG(mad < 1.0, "%s: frames differ from the ffmpeg CLI by %.3f levels", name, mad);
    /* forced seek mode: the same frames, byte for byte */
    st = decode(name, QV_MEDIA_SEEK, 0, &b, &err);
    CHECK_MSG(st == QV_OK, "%s seek: %s", name, err.msg);
    int same = !st && b.n_frames == a.n_frames && memcmp(a.idx, b.idx, sizeof a.idx[0] * a.n_frames) == 0 &&
               memcmp(a.frames, b.frames, a.fsz * a.n_frames) == 0 && a.px_sum == b.px_sum;
    CHECK_MSG(same, "%s: seek mode differs from sequential", name);
    printf("%-12s total %4lld fps %6.3f frames %3d  vs ffmpeg CLI %.4f levels, seek mode (%d seeks) %s\n", name,
           (long long)a.total, a.fps, a.n_frames, mad, b.n_seeks, same ? "identical" : "DIFFERENT");
    free(a.frames);
    free(b.frames);
}

/* must_fail: 1 = an error is required; max_total > 0: when it opens, the count must not exceed this
 * (the packets really in the file, not the container's claim) */
static void check_damaged(const char *name, int must_fail, int64_t max_total) {
    capture a;
    qv_err err = {0};
    qv_status st = decode(name, QV_MEDIA_AUTO, 0, &a, &err);
    if (st) {
        CHECK_MSG(strlen(err.msg) > 0 && strstr(err.msg, name) != NULL && !strchr(err.msg, '\n'),
                  "%s: error message '%s'", name, err.msg);
        printf("%-20s error: %s\n", name, err.msg);
    } else {
        CHECK_MSG(!must_fail, "%s should fail", name);
        if (max_total > 0) CHECK_MSG(a.total <= max_total, "%s: %lld frames counted", name, (long long)a.total);
        for (int j = 0; j < a.n_frames; j++) CHECK(a.idx[j] >= 0 && a.idx[j] < a.total);
        for (int j = 1; j < a.n_frames; j++) CHECK(a.idx[j] >= a.idx[j - 1]);
        printf("%-20s ok: total %lld, %d frames, last index %lld\n", name, (long long)a.total, a.n_frames,
               a.n_frames ? (long long)a.idx[a.n_frames - 1] : -1LL);
    }
    free(a.frames);
}

int main(void) {
    alarm(300);   /* a hang is a failure */
    const char *tmp = getenv("QV_TMP");
    snprintf(clips, sizeof clips, "%s/clips", tmp ? tmp : "/tmp/qv_video_test");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "bash samples/make_clips.sh '%s' > /dev/null", clips);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "make_clips.sh failed (%d)", rc);
    if (rc) return test_done();

    /* containers and codecs: 60 frames at 30 fps -> 4 frames 0, 20, 39, 59 */
    const char *std[] = {"h264.mp4", "h264.mkv", "h264.mov", "mpeg4.avi", "vp9.webm", "hevc.mp4", "av1.mkv"};
    for (size_t i = 0; i < sizeof std / sizeof *std; i++) check_clip(std[i], 60, 4);
    check_clip("vfr.mp4", 60, 8);      /* 4 s of video (avg 15 fps) -> 8 frames */
    check_clip("one.mp4", 1, 1);
    check_clip("three.mp4", 3, 2);
    check_clip("seek.mp4", 600, 40);
    check_clip("seek.mkv", 600, 40);
    check_clip("seek.ts", 600, 40);
    check_clip("opengop.mp4", 600, 40);
    check_clip("mpeg2.mpg", 60, 4);

    /* VFR: timestamps are the frames' own: frame k at k/30 s for k < 30, then 1 + (k-30)/10 s */
    {
        capture a;
        qv_err err = {0};
        if (decode("vfr.mp4", QV_MEDIA_AUTO, 0, &a, &err) == QV_OK) {
            /* the stream's average frame rate, as ffprobe reports it (what the reference samples with) */
            char cmd[800], buf[64] = "";
            snprintf(cmd, sizeof cmd, "ffprobe -v error -select_streams v:0 -show_entries stream=avg_frame_rate "
                     "-of csv=p=0 '%s/vfr.mp4'", clips);
            FILE *p = popen(cmd, "r");
            if (p) {
                if (!fgets(buf, sizeof buf, p)) buf[0] = 0;
                pclose(p);
            }
            double num = 0, den = 1;
            CHECK(sscanf(buf, "%lf/%lf", &num, &den) == 2 && den > 0);
            CHECK_MSG(fabs(a.fps - num / den) < 1e-9, "vfr fps %.6f, ffprobe %s", a.fps, buf);
            CHECK(a.fps > 10 && a.fps < 30);
            for (int j = 0; j < a.n_frames; j++) {
                double k = (double)a.idx[j], want = k < 30 ? k / 30.0 * 1000 : (1.0 + (k - 30) / 10.0) * 1000;
                CHECK_MSG(fabs(a.pts[j] - want) < 1.0, "vfr frame %lld at %.3f ms, want %.3f", (long long)a.idx[j],
                          a.pts[j], want);
            }
        } else CHECK_MSG(0, "vfr: %s", err.msg);
        free(a.frames);
    }
    /* automatic mode on a long sparse sampling seeks, and gives the same frames as sequential */
    {
        const char *names[] = {"seek.mp4", "seek.mkv", "seek.ts"};
        for (int i = 0; i < 3; i++) {
            capture a, b;
            qv_err err = {0};
            CHECK(decode(names[i], QV_MEDIA_SEQUENTIAL, 0.5, &a, &err) == QV_OK);
            CHECK(decode(names[i], QV_MEDIA_AUTO, 0.5, &b, &err) == QV_OK);
            CHECK_MSG(b.n_seeks > 0, "%s: auto mode did not seek", names[i]);
            CHECK(a.n_seeks == 0);
            /* non-reference B-frames that are not targets are not decoded at all */
            CHECK_MSG(a.n_decoded < 600, "%s: %lld frames decoded sequentially", names[i], (long long)a.n_decoded);
            CHECK(a.n_frames == 10 && b.n_frames == 10);
            int same = a.n_frames == b.n_frames && !memcmp(a.idx, b.idx, sizeof a.idx[0] * a.n_frames) &&
                       !memcmp(a.frames, b.frames, a.fsz * a.n_frames);
            CHECK_MSG(same, "%s: auto (seeking) and sequential differ", names[i]);
            printf("%s at 0.5 fps: auto mode %d seeks, %s to sequential\n", names[i], b.n_seeks,
                   same ? "identical" : "DIFFERENT");
            free(a.frames);
            free(b.frames);
        }
    }
    /* still images: one frame, repeated into one pair */
    {
        const char *names[] = {"still.png", "still.jpg", "still.webp"};
        for (int i = 0; i < 3; i++) {
            capture a;
            qv_err err = {0};
            qv_status st = decode(names[i], QV_MEDIA_AUTO, 0, &a, &err);
            CHECK_MSG(st == QV_OK, "%s: %s", names[i], err.msg);
            if (!st) {
                CHECK(a.is_image && a.n_frames == 1 && a.t == 1 && a.n_pairs == 1);
                CHECK(a.gh == 14 && a.gw == 22);   /* 300x200 -> smart_resize 308x196 */
                /* PNG is lossless: the ffmpeg CLI's pixels. JPEG and WebP are decoded as Pillow decodes them
                 * (pipeline/image.c, checked byte for byte by unit_image): only near the ffmpeg CLI's */
                double mad = vs_ffmpeg(names[i], &a, 1), tol = i == 0 ? 1.0 : 6.0;
                CHECK_MSG(mad < tol, "%s: %.3f levels from the ffmpeg CLI", names[i], mad);
            }
            free(a.frames);
        }
    }
    /* damaged files */
    check_damaged("trunc_faststart.mp4", 0, 40);
    check_damaged("trunc_moov.mp4", 0, 0);
    check_damaged("trunc.mkv", 0, 40);
    check_damaged("trunc.webm", 0, 40);
    check_damaged("corrupt.mkv", 0, 60);
    check_damaged("corrupt.mp4", 0, 60);
    check_damaged("garbage.mp4", 1, 0);
    check_damaged("empty.mp4", 1, 0);
    check_damaged("does_not_exist.mp4", 1, 0);
    /* not a regular file: refused at once (a FIFO or /dev/zero would block or never end) */
    {
        qv_media *m = NULL;
        qv_err err = {0};
        qv_media_opts o = qv_media_default_opts();
        CHECK(qv_media_open(&m, "/dev/zero", &o, &err) != QV_OK && m == NULL && strstr(err.msg, "regular"));
        CHECK(qv_media_open(&m, clips, &o, &err) != QV_OK && m == NULL);
        /* a concat script naming itself: refused, not opened recursively */
        char self[700];
        snprintf(self, sizeof self, "%s/self.mp4", clips);
        FILE *f = fopen(self, "w");
        if (f) {
            fputs("ffconcat version 1.0\nfile self.mp4\n", f);
            fclose(f);
        }
        CHECK(qv_media_open(&m, self, &o, &err) != QV_OK && m == NULL && strstr(err.msg, "concat"));
    }
    return test_done();
}
