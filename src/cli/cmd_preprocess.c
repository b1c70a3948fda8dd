/* cmd_preprocess.c — qv preprocess: decode, sample and resize a video or image exactly as the reference
 * does, print the choice as one JSON line and optionally dump frames_u8 / resized_u8 / pixel_values in the
 * layout of ../shared/fixtures/golden/preprocess.safetensors (without the a./c. prefix). The dump is
 * written while frames stream (qv_st_writer), so a long video never sits in memory. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "video.h"
#include "safetensors.h"
#include "threads.h"

static void help(void) {
    puts("usage: qv preprocess FILE [options] [--dump OUT.safetensors]\n"
         "\n"
         "Decodes a video (any container/codec FFmpeg reads) or a still image (PNG, JPEG, WebP), picks frames\n"
         "and size like Qwen2-VL's reference preprocessing, and builds the vision encoder input. Prints one\n"
         "JSON line: {\"indices\", \"pts_ms\", \"resized_height\", \"resized_width\", \"grid_thw\", ...}.\n"
         "\n"
         "options:\n"
         "  --fps F            frames sampled per second of video (default 2)\n"
         "  --min-frames N     at least N frames (default 4)\n"
         "  --max-frames N     at most N frames (default 768)\n"
         "  --min-pixels P     min pixels per frame (default video 100352, image 3136)\n"
         "  --max-pixels P     max pixels per frame (default video 602112 capped by the total budget,\n"
         "                     image 12845056)\n"
         "  --total-pixels P   video pixel budget over all frames (default 19267584; later Qwen releases\n"
         "                     use 90316800)\n"
         "  --start S          first second of the video to sample from\n"
         "  --end S            last second of the video to sample from\n"
         "  --image            treat FILE as a still image (its first frame)\n"
         "  --autorotate       turn a photo (EXIF orientation) or video (rotation metadata) upright; the\n"
         "                     reference does not: by default pixels are used as stored\n"
         "  --sequential       never seek (decode every frame in order)\n"
         "  --seek             seek to the keyframe before every target that skips frames\n"
         "                     (default: seek only when it saves work; the frames are the same)\n"
         "  --threads N        decoder and resize threads (default: all CPUs)\n"
         "  --dump OUT         write frames_u8 [T,H,W,3] (image [H,W,3]), resized_u8 [T,3,h,w]\n"
         "                     (image [h,w,3]) and pixel_values [patches,1176] f32 to OUT.safetensors\n"
         "\n"
         "examples:\n"
         "  qv preprocess ../shared/fixtures/media/sample_a.mp4\n"
         "  qv preprocess talk.mkv --fps 1 --max-frames 64 --start 60 --end 120\n"
         "  qv preprocess photo.png --dump /tmp/photo.safetensors");
}

typedef struct {
    qv_st_writer *w;
    int i_frames, i_resized, i_px;
    uint8_t *chw;            /* [3][h][w] scratch for a video frame's resized_u8 */
    qv_err err;
    int failed;
} dump_ctx;

static int on_frame(void *user, int j, const uint8_t *rgb, const uint8_t *res, const qv_media_info *mi) {
    dump_ctx *d = user;
    uint64_t fsz = (uint64_t)mi->src_w * mi->src_h * 3, rsz = (uint64_t)mi->resized_w * mi->resized_h * 3;
    if (qv_st_writer_put(d->w, d->i_frames, (uint64_t)j * fsz, rgb, fsz, &d->err)) return d->failed = 1;
    const uint8_t *out = res;
    if (!mi->is_image) {
        size_t hw = (size_t)mi->resized_w * mi->resized_h;
        for (size_t p = 0; p < hw; p++) {
            d->chw[p] = res[3 * p];
            d->chw[hw + p] = res[3 * p + 1];
            d->chw[2 * hw + p] = res[3 * p + 2];
        }
        out = d->chw;
    }
    if (qv_st_writer_put(d->w, d->i_resized, (uint64_t)j * rsz, out, rsz, &d->err)) return d->failed = 1;
    return 0;
}

static int on_pair(void *user, int k, const float *px, const qv_media_info *mi) {
    dump_ctx *d = user;
    uint64_t n = (uint64_t)mi->gh * mi->gw * 1176 * sizeof(float);
    if (qv_st_writer_put(d->w, d->i_px, (uint64_t)k * n, px, n, &d->err)) return d->failed = 1;
    return 0;
}

static void print_json(const qv_media_info *mi) {
    printf("{\"indices\": [");
    for (int j = 0; j < mi->n_frames; j++) printf("%s%lld", j ? ", " : "", (long long)mi->indices[j]);
    printf("], \"pts_ms\": [");
    for (int j = 0; j < mi->n_frames; j++) printf("%s%.10g", j ? ", " : "", mi->pts_ms[j]);
    printf("], \"resized_height\": %d, \"resized_width\": %d, \"grid_thw\": [%d, %d, %d]", mi->resized_h,
           mi->resized_w, mi->t, mi->gh, mi->gw);
    printf(", \"is_image\": %s, \"width\": %d, \"height\": %d, \"total_frames\": %lld, \"fps\": %.10g"
           ", \"min_pixels\": %.10g, \"max_pixels\": %.10g, \"seeks\": %d, \"decoded\": %lld"
           ", \"codec\": \"%s\", \"orientation\": %d, \"rotated\": %s}\n",
           mi->is_image ? "true" : "false", mi->src_w, mi->src_h, (long long)mi->total_frames, mi->stream_fps,
           mi->min_pixels, mi->max_pixels, mi->n_seeks, (long long)mi->n_decoded, mi->codec ? mi->codec : "",
           mi->orientation ? mi->orientation : 1, mi->rotated ? "true" : "false");
}

int qv_cmd_preprocess(int argc, char **argv) {
    const char *cmd = "preprocess", *file = NULL, *dump = NULL;
    qv_media_opts o = qv_media_default_opts();
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        double d;
        if (cli_is_help(a)) {
            help();
            return 0;
        } else if (!strcmp(a, "--fps")) {
            if (!cli_parse_double(cmd, a, v, 1e-6, 1000, &d)) return 2;
            o.fps = d, i++;
        } else if (!strcmp(a, "--min-frames")) {
            if (!cli_parse_int(cmd, a, v, 0, 100000, &l)) return 2;
            o.min_frames = (int)l, i++;
        } else if (!strcmp(a, "--max-frames")) {
            if (!cli_parse_int(cmd, a, v, 1, 100000, &l)) return 2;
            o.max_frames = (int)l, i++;
        } else if (!strcmp(a, "--min-pixels")) {
            if (!cli_parse_int(cmd, a, v, 1, 1L << 40, &l)) return 2;
            o.min_pixels = l, i++;
        } else if (!strcmp(a, "--max-pixels")) {
            if (!cli_parse_int(cmd, a, v, 1, 1L << 40, &l)) return 2;
            o.max_pixels = l, i++;
        } else if (!strcmp(a, "--total-pixels")) {
            if (!cli_parse_int(cmd, a, v, 1, 1L << 50, &l)) return 2;
            o.total_pixels = l, i++;
        } else if (!strcmp(a, "--start")) {
            if (!cli_parse_time(cmd, a, v, 0, 1e9, &d)) return 2;
            o.start_s = d, i++;
        } else if (!strcmp(a, "--end")) {
            if (!cli_parse_time(cmd, a, v, 0, 1e9, &d)) return 2;
            o.end_s = d, i++;
        } else if (!strcmp(a, "--threads")) {
            if (!cli_parse_int(cmd, a, v, 0, 256, &threads)) return 2;
            i++;
        } else if (!strcmp(a, "--dump")) {
            if (!v) return cli_usage(cmd, "--dump needs a file name");
            dump = v, i++;
        } else if (!strcmp(a, "--image")) {
            o.force_image = 1;
        } else if (!strcmp(a, "--autorotate")) {
            o.autorotate = 1;
        } else if (!strcmp(a, "--sequential")) {
            o.mode = QV_MEDIA_SEQUENTIAL;
        } else if (!strcmp(a, "--seek")) {
            o.mode = QV_MEDIA_SEEK;
        } else if (a[0] == '-' && a[1]) {
            return cli_unknown_option(cmd, a);
        } else if (file) {
            return cli_usage(cmd, "one input file only ('%s' and '%s')", file, a);
        } else {
            file = a;
        }
    }
    if (!file) return cli_usage(cmd, "no input file");
    if (o.start_s >= 0 && o.end_s >= 0 && o.end_s < o.start_s)
        return cli_usage(cmd, "--end %g is before --start %g", o.end_s, o.start_s);

    qv_pool *pool = qv_pool_create((int)threads);
    o.pool = pool;
    o.n_threads = (int)threads;
    qv_media *m = NULL;
    qv_err err = {0};
    int rc = 0;
    dump_ctx d = {0};
    if (qv_media_open(&m, file, &o, &err)) {
        rc = cli_fail("%s", err.msg);
        goto done;
    }
    const qv_media_info *mi = qv_media_get_info(m);
    if (dump) {
        if (qv_st_writer_create(&d.w, dump, &err)) {
            rc = cli_fail("%s", err.msg);
            goto done;
        }
        int64_t T = mi->n_frames, H = mi->src_h, W = mi->src_w, h = mi->resized_h, w = mi->resized_w;
        int64_t sf[4] = {T, H, W, 3}, sr[4] = {T, 3, h, w}, sp[2] = {(int64_t)mi->t * mi->gh * mi->gw, 1176};
        if (mi->is_image) {
            int64_t f3[3] = {H, W, 3}, r3[3] = {h, w, 3};
            d.i_frames = qv_st_writer_add(d.w, "frames_u8", QV_U8, 3, f3);
            d.i_resized = qv_st_writer_add(d.w, "resized_u8", QV_U8, 3, r3);
        } else {
            d.i_frames = qv_st_writer_add(d.w, "frames_u8", QV_U8, 4, sf);
            d.i_resized = qv_st_writer_add(d.w, "resized_u8", QV_U8, 4, sr);
        }
        d.i_px = qv_st_writer_add(d.w, "pixel_values", QV_F32, 2, sp);
        d.chw = malloc((size_t)h * w * 3);
        if (d.i_frames < 0 || d.i_resized < 0 || d.i_px < 0 || !d.chw) {
            rc = cli_fail("%s: out of memory", dump);
            goto done;
        }
        if (qv_st_writer_begin(d.w, NULL, &err)) {
            rc = cli_fail("%s", err.msg);
            goto done;
        }
    }
    if (qv_media_run(m, dump ? on_pair : NULL, dump ? on_frame : NULL, &d, &err)) {
        rc = cli_fail("%s", d.failed ? d.err.msg : err.msg);
        goto done;
    }
    if (d.w) {
        qv_status s = qv_st_writer_finish(d.w, &err);
        d.w = NULL;
        if (s) {
            rc = cli_fail("%s", err.msg);
            goto done;
        }
    }
    print_json(mi);
done:
    if (d.w) qv_st_writer_abort(d.w);
    free(d.chw);
    qv_media_free(m);
    qv_pool_free(pool);
    return rc;
}
