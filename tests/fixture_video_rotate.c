/* fixture_video_rotate.c — a video's rotation metadata (display matrix): ignored by default, as the reference's
 * readers (torchvision/PyAV, decord) ignore it; applied with autorotate exactly as the ffmpeg command line's
 * autorotate applies it. Copies of media/sample_a.mp4 tagged rotate=90/180/270 are made with the ffmpeg program;
 * the first sampled frame (index 0) is compared byte for byte with `ffmpeg -frames:v 1` (autorotate on) and
 * `ffmpeg -noautorotate`. */
#include <stdint.h>

#include "image.h"
#include "video.h"
#include "test.h"

typedef struct {
    uint8_t *rgb;
    size_t n;
} first_t;

static int on_frame(void *user, int j, const uint8_t *rgb, const uint8_t *resized, const qv_media_info *mi) {
    first_t *f = user;
    if (j == 0) {
        f->n = (size_t)mi->src_w * mi->src_h * 3;
        f->rgb = malloc(f->n);
        memcpy(f->rgb, rgb, f->n);
    }
    return 0;
}

static uint8_t *ffmpeg_first(const char *path, int autorotate, size_t want) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error %s -i '%s' -frames:v 1 -f rawvideo -pix_fmt rgb24 -",
             autorotate ? "" : "-noautorotate", path);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    uint8_t *b = malloc(want + 1);
    size_t n = fread(b, 1, want + 1, p);
    int rc = pclose(p);
    if (rc != 0 || n != want) {
        fprintf(stderr, "%s: %zu bytes (want %zu), rc %d\n", cmd, n, want, rc);
        free(b);
        return NULL;
    }
    return b;
}

int main(void) {
    char *src = test_fixture("media/sample_a.mp4");
    static const struct { int deg, orientation, swap; } cases[] = {{90, 8, 1}, {180, 3, 0}, {270, 6, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char name[64], cmd[2048];
        snprintf(name, sizeof name, "rot%d.mp4", cases[c].deg);
        char *path = test_tmp(name);
        snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -i '%s' -c copy -metadata:s:v:0 rotate=%d '%s'", src, cases[c].deg,
                 path);
        CHECK_MSG(system(cmd) == 0, "%s failed", cmd);
        for (int ar = 0; ar <= 1; ar++) {
            qv_media_opts o = qv_media_default_opts();
            o.autorotate = ar;
            qv_media *m = NULL;
            qv_err err = {0};
            qv_status st = qv_media_open(&m, path, &o, &err);
            CHECK_MSG(st == QV_OK, "%s: %s", name, err.msg);
            if (st) continue;
            const qv_media_info *mi = qv_media_get_info(m);
            int turned = ar && cases[c].swap;
            CHECK_MSG(mi->orientation == cases[c].orientation && mi->rotated == ar, "%s autorotate %d: orientation %d rotated %d",
                      name, ar, mi->orientation, mi->rotated);
            CHECK_MSG(mi->src_w == (turned ? 180 : 320) && mi->src_h == (turned ? 320 : 180), "%s autorotate %d: %dx%d", name,
                      ar, mi->src_w, mi->src_h);
            first_t f = {0};
            st = qv_media_run(m, NULL, on_frame, &f, &err);
            CHECK_MSG(st == QV_OK && f.rgb, "%s: run: %s", name, err.msg);
            uint8_t *want = f.rgb ? ffmpeg_first(path, ar, f.n) : NULL;
            CHECK_MSG(want != NULL, "%s: no reference frame from the ffmpeg program", name);
            if (want && f.rgb) {
                size_t diff = 0;
                for (size_t i = 0; i < f.n; i++) diff += f.rgb[i] != want[i];
                CHECK_MSG(diff == 0, "%s autorotate %d: %zu of %zu values differ from the ffmpeg program's frame", name, ar,
                          diff, f.n);
            }
            free(want);
            free(f.rgb);
            qv_media_free(m);
        }
        free(path);
    }
    free(src);
    return test_done();
}
