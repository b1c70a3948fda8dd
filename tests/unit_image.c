/* unit_image.c — photos decoded and resized byte for byte as the reference (Pillow) does it, EXIF orientation
 * ignored by default and applied with autorotate, and damaged photos refused with one line.
 * Fixtures: tests/data/photos (images + Pillow's decoded and resized pixels, made by make_photos.py; see its
 * header for the MANIFEST format). Goes through qv_media_open/run, the path every command uses. */
#include <errno.h>
#include <stdint.h>
#include <zlib.h>

#include "image.h"
#include "video.h"
#include "test.h"

#define DIR "tests/data/photos/"

typedef struct {
    uint8_t *rgb, *res;
    size_t n_rgb, n_res;
    int frames;
} got_t;

static int on_frame(void *user, int j, const uint8_t *rgb, const uint8_t *resized, const qv_media_info *mi) {
    got_t *g = user;
    g->n_rgb = (size_t)mi->src_w * mi->src_h * 3;
    g->n_res = (size_t)mi->resized_w * mi->resized_h * 3;
    free(g->rgb);
    free(g->res);
    g->rgb = malloc(g->n_rgb);
    g->res = malloc(g->n_res);
    memcpy(g->rgb, rgb, g->n_rgb);
    memcpy(g->res, resized, g->n_res);
    g->frames++;
    return 0;
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static int write_all(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = fwrite(b, 1, n, f);
    return fclose(f) == 0 && w == n;
}

/* expected pixels: zlib stream of (byte - (up + left - upleft)) mod 256 per channel, w*3 bytes a row */
static uint8_t *load_expected(const char *rel, int w, int h) {
    char path[512];
    snprintf(path, sizeof path, DIR "%s", rel);
    size_t zn;
    uint8_t *z = read_all(path, &zn);
    if (!z) return NULL;
    uLongf n = (uLongf)w * h * 3;
    uint8_t *b = malloc(n);
    int r = uncompress(b, &n, z, zn);
    free(z);
    if (r != Z_OK || n != (uLongf)w * h * 3) {
        free(b);
        return NULL;
    }
    size_t row = (size_t)w * 3;
    for (size_t i = 0; i < n; i++) {
        size_t x = i % row;
        int up = i >= row ? b[i - row] : 0, left = x >= 3 ? b[i - 3] : 0;
        int ul = i >= row && x >= 3 ? b[i - row - 3] : 0;
        b[i] = (uint8_t)(b[i] + up + left - ul);
    }
    return b;
}

static void compare(const char *what, const char *file, int rot, const uint8_t *got, const uint8_t *want, size_t n) {
    size_t diff = 0, first = (size_t)-1;
    int maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)want[i]);
        if (d) {
            if (!diff) first = i;
            diff++;
            if (d > maxd) maxd = d;
        }
    }
    CHECK_MSG(diff == 0, "%s%s %s: %zu of %zu values differ from Pillow's (max %d levels, first at byte %zu)", file,
              rot ? " --autorotate" : "", what, diff, n, maxd, first);
}

static void manifest_cases(void) {
    FILE *f = fopen(DIR "MANIFEST", "r");
    CHECK_MSG(f != NULL, "cannot open " DIR "MANIFEST (run from the source root)");
    if (!f) return;
    char line[1024];
    int cases = 0, kinds_rot = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char file[256], dec[256], res[256];
        int rot, w, h, rw, rh;
        if (sscanf(line, "%255s %d %d %d %d %d %255s %255s", file, &rot, &w, &h, &rw, &rh, dec, res) != 8) {
            CHECK_MSG(0, "bad MANIFEST line: %s", line);
            continue;
        }
        cases++;
        char path[512];
        snprintf(path, sizeof path, DIR "%s", file);
        qv_media_opts o = qv_media_default_opts();
        o.autorotate = rot;
        qv_media *m = NULL;
        qv_err err = {0};
        qv_status st = qv_media_open(&m, path, &o, &err);
        CHECK_MSG(st == QV_OK, "%s: open: %s", file, err.msg);
        if (st) continue;
        const qv_media_info *mi = qv_media_get_info(m);
        CHECK_MSG(mi->is_image && mi->n_frames == 1 && mi->t == 1, "%s: not taken as one image", file);
        CHECK_MSG(strstr(mi->codec, file[0] == 'j' ? "jpeg" : file[0] == 'w' ? "webp" : "png"),
                  "%s: decoded by %s", file, mi->codec);
        CHECK_MSG(mi->src_w == w && mi->src_h == h, "%s: size %dx%d, Pillow %dx%d", file, mi->src_w, mi->src_h, w, h);
        CHECK_MSG(mi->resized_w == rw && mi->resized_h == rh, "%s: resized %dx%d, reference %dx%d", file,
                  mi->resized_w, mi->resized_h, rw, rh);
        if (rot) kinds_rot += mi->rotated;
        got_t g = {0};
        st = qv_media_run(m, NULL, on_frame, &g, &err);
        CHECK_MSG(st == QV_OK && g.frames == 1, "%s: run: %s", file, err.msg);
        if (!st && mi->src_w == w && mi->src_h == h) {
            uint8_t *want = load_expected(dec, w, h);
            CHECK_MSG(want != NULL, "%s: cannot read %s", file, dec);
            if (want) compare("decoded RGB", file, rot, g.rgb, want, g.n_rgb);
            free(want);
            if (strcmp(res, "-") != 0 && mi->resized_w == rw && mi->resized_h == rh) {
                want = load_expected(res, rw, rh);
                CHECK_MSG(want != NULL, "%s: cannot read %s", file, res);
                if (want) compare("resized RGB", file, rot, g.res, want, g.n_res);
                free(want);
            }
        }
        free(g.rgb);
        free(g.res);
        qv_media_free(m);
    }
    fclose(f);
    CHECK_MSG(cases >= 30, "only %d MANIFEST cases", cases);
    CHECK_MSG(kinds_rot >= 8, "only %d rotated cases", kinds_rot);   /* 7 JPEG orientations + WebP */
}

/* The default ignores the orientation (the reference does); the info still reports it. */
static void orientation_default(void) {
    qv_media_opts o = qv_media_default_opts();
    qv_media *m = NULL;
    qv_err err = {0};
    CHECK(qv_media_open(&m, DIR "jpeg_exif6.jpg", &o, &err) == QV_OK);
    if (m) {
        const qv_media_info *mi = qv_media_get_info(m);
        CHECK_MSG(mi->orientation == 6 && !mi->rotated && mi->src_w == 61 && mi->src_h == 47,
                  "orientation %d rotated %d size %dx%d", mi->orientation, mi->rotated, mi->src_w, mi->src_h);
    }
    qv_media_free(m);
    o.autorotate = 1;
    CHECK(qv_media_open(&m, DIR "jpeg_exif6.jpg", &o, &err) == QV_OK);
    if (m) {
        const qv_media_info *mi = qv_media_get_info(m);
        CHECK_MSG(mi->orientation == 6 && mi->rotated && mi->src_w == 47 && mi->src_h == 61,
                  "autorotate: orientation %d rotated %d size %dx%d", mi->orientation, mi->rotated, mi->src_w, mi->src_h);
    }
    qv_media_free(m);
}

/* Hostile EXIF blocks: bounded, and anything malformed reads as "no orientation". */
static void exif_parser(void) {
    const uint8_t ok_le[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0};
    const uint8_t ok_be[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0};
    CHECK(qv_exif_orientation(ok_le, sizeof ok_le) == 6);
    CHECK(qv_exif_orientation(ok_be, sizeof ok_be) == 8);
    for (size_t n = 0; n < sizeof ok_le; n++) CHECK(qv_exif_orientation(ok_le, n) == 1);   /* every truncation */
    uint8_t bad[sizeof ok_le];
    memcpy(bad, ok_le, sizeof bad);
    bad[4] = 0xF0, bad[7] = 0x7F;   /* IFD offset far outside */
    CHECK(qv_exif_orientation(bad, sizeof bad) == 1);
    memcpy(bad, ok_le, sizeof bad);
    bad[8] = 0xFF, bad[9] = 0xFF;   /* 65535 entries in a 22-byte block, the orientation not among those there */
    bad[10] = 0x13;
    CHECK(qv_exif_orientation(bad, sizeof bad) == 1);
    memcpy(bad, ok_le, sizeof bad);
    bad[18] = 9;                    /* orientation out of range */
    CHECK(qv_exif_orientation(bad, sizeof bad) == 1);
    CHECK(qv_exif_orientation(NULL, 0) == 1);
}

/* Damaged files: a non-OK status and one line naming the file, never a crash (run under ASan in CI). */
static void expect_refused(const char *what, const char *path, const uint8_t *b, size_t n) {
    CHECK(write_all(path, b, n));
    qv_media_opts o = qv_media_default_opts();
    qv_media *m = NULL;
    qv_err err = {0};
    qv_status st = qv_media_open(&m, path, &o, &err);
    if (st == QV_OK) {   /* decoders may only fail when the pixels are needed: run it */
        st = qv_media_run(m, NULL, NULL, NULL, &err);
    }
    CHECK_MSG(st != QV_OK, "%s: accepted", what);
    CHECK_MSG(st == QV_OK || (err.msg[0] && !strchr(err.msg, '\n') && strstr(err.msg, path)), "%s: message '%s'",
              what, err.msg);
    qv_media_free(m);
}

static void damaged(void) {
    static const char *const files[] = {"jpeg_420.jpg", "jpeg_progressive.jpg", "jpeg_gray.jpg", "webp_lossy.webp",
                                        "webp_lossless_alpha.webp", "png_rgba.png", "png_palette.png"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char src[256], what[300];
        snprintf(src, sizeof src, DIR "%s", files[k]);
        size_t n;
        uint8_t *b = read_all(src, &n);
        CHECK_MSG(b != NULL, "cannot read %s", src);
        if (!b) continue;
        char *tmp = test_tmp(files[k]);
        const size_t cuts[] = {n / 2, n * 3 / 4, 40, 13};
        for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
            snprintf(what, sizeof what, "%s cut to %zu of %zu bytes", files[k], cuts[c], n);
            expect_refused(what, tmp, b, cuts[c]);
        }
        /* garbage after the signature: no crash; JPEG/PNG/WebP with broken headers fail */
        uint8_t *g = malloc(n);
        memcpy(g, b, n);
        for (size_t i = 16; i < n; i++) g[i] = (uint8_t)(i * 2654435761u >> 13);
        snprintf(what, sizeof what, "%s with garbage after byte 16", files[k]);
        expect_refused(what, tmp, g, n);
        /* flipped bytes in the middle of the data: either a clean error or an image, never a crash */
        memcpy(g, b, n);
        for (size_t i = n / 2; i < n / 2 + 8 && i < n; i++) g[i] ^= 0x5A;
        CHECK(write_all(tmp, g, n));
        qv_media_opts o = qv_media_default_opts();
        qv_media *m = NULL;
        qv_err err = {0};
        qv_status st = qv_media_open(&m, tmp, &o, &err);
        if (!st) st = qv_media_run(m, NULL, NULL, NULL, &err);
        CHECK_MSG(st == QV_OK || (err.msg[0] && !strchr(err.msg, '\n')), "%s flipped: '%s'", files[k], err.msg);
        qv_media_free(m);
        free(g);
        free(b);
        remove(tmp);
        free(tmp);
    }
}

/* Random damage (deterministic): bytes overwritten, the file cut anywhere. Whatever happens: a status, a one-line
 * message when it fails, no crash or leak (ASan in CI). */
static void mutations(void) {
    static const char *const files[] = {"jpeg_420.jpg", "jpeg_progressive.jpg", "jpeg_cmyk.jpg", "jpeg_exif6.jpg",
                                        "webp_lossy_alpha.webp", "webp_lossless.webp", "png_palette_trns.png",
                                        "png_gray16.png", "jpeg_xmp6.jpg", "png_xmp3.png", "webp_xmp8.webp"};
    uint32_t r = 12345;
    int n_ok = 0, n_err = 0;
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char src[256];
        snprintf(src, sizeof src, DIR "%s", files[k]);
        size_t n;
        uint8_t *b = read_all(src, &n);
        if (!b) continue;
        uint8_t *g = malloc(n);
        char *tmp = test_tmp(files[k]);
        for (int t = 0; t < 40; t++) {
            memcpy(g, b, n);
            size_t len = n;
            int edits = 1 + (int)((r = r * 1664525u + 1013904223u) >> 29);
            for (int e = 0; e < edits; e++) {
                r = r * 1664525u + 1013904223u;
                size_t at = (r >> 8) % n;
                r = r * 1664525u + 1013904223u;
                g[at] = (uint8_t)(r >> 24);
            }
            if (t % 4 == 3) len = 2 + ((r = r * 1664525u + 1013904223u) >> 8) % (n - 2);
            if (!write_all(tmp, g, len)) continue;
            qv_media_opts o = qv_media_default_opts();
            o.autorotate = t & 1;
            qv_media *m = NULL;
            qv_err err = {0};
            qv_status st = qv_media_open(&m, tmp, &o, &err);
            if (!st) st = qv_media_run(m, NULL, NULL, NULL, &err);
            if (st) {
                n_err++;
                CHECK_MSG(err.msg[0] && !strchr(err.msg, '\n'), "%s mutation %d: message '%s'", files[k], t, err.msg);
            } else {
                n_ok++;
            }
            qv_media_free(m);
        }
        remove(tmp);
        free(tmp);
        free(g);
        free(b);
    }
    CHECK_MSG(n_err > 0, "no mutation was refused (%d decoded)", n_ok);
    printf("mutations: %d decoded, %d refused\n", n_ok, n_err);
}

int main(void) {
    manifest_cases();
    orientation_default();
    exif_parser();
    damaged();
    mutations();
    return test_done();
}
