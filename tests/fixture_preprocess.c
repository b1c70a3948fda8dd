/* fixture_preprocess.c — the video front end against golden/preprocess.{json,safetensors} (reference:
 * qwen-vl-utils + transformers on sample_a.mp4 and image_c.png). Tolerances from fixtures/README.md:
 * indices, sizes, grids equal; decoded frames within 1 level mean absolute difference; resize of the
 * golden frames within 1 level at every sample (image: bit exact); pixel values from the golden resized
 * frames within 1e-6. */
#include <cjson/cJSON.h>
#include <sys/wait.h>

#include "video.h"
#include "safetensors.h"
#include "test.h"
#include "preprocess.h"

static cJSON *golden_json;
static qv_st *golden;

static const qv_tensor *gt(const char *name) {
    const qv_tensor *t = qv_st_get(golden, name);
    CHECK_MSG(t != NULL, "golden tensor %s missing", name);
    return t;
}

static int jint(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

typedef struct {
    const uint8_t *frames;   /* golden frames_u8 */
    size_t fsz;
    double worst_mad;
    int n_seen;
    int is_image;
    const float *gpx;        /* golden pixel values */
    double worst_px;         /* full pipeline vs golden pixel values, max abs */
    size_t per;
} run_ctx;

static int on_frame(void *user, int j, const uint8_t *rgb, const uint8_t *res, const qv_media_info *mi) {
    run_ctx *c = user;
    const uint8_t *g = c->frames + (size_t)j * c->fsz;
    double s = 0;
    for (size_t i = 0; i < c->fsz; i++) s += abs((int)rgb[i] - (int)g[i]);
    double mad = s / (double)c->fsz;
    if (mad > c->worst_mad) c->worst_mad = mad;
    c->n_seen++;
    return 0;
}

static int on_pair(void *user, int k, const float *px, const qv_media_info *mi) {
    run_ctx *c = user;
    const float *g = c->gpx + (size_t)k * c->per;
    for (size_t i = 0; i < c->per; i++) {
        double d = fabs((double)px[i] - (double)g[i]);
        if (d > c->worst_px) c->worst_px = d;
    }
    return 0;
}

static void check_case(const char *key, const char *media, int is_image) {
    const cJSON *js = cJSON_GetObjectItem(golden_json, key);
    CHECK(js != NULL);
    if (!js) return;
    char name[64];
    snprintf(name, sizeof name, "%s.frames_u8", key);
    const qv_tensor *tf = gt(name);
    snprintf(name, sizeof name, "%s.resized_u8", key);
    const qv_tensor *tr = gt(name);
    snprintf(name, sizeof name, "%s.pixel_values", key);
    const qv_tensor *tp = gt(name);
    if (!tf || !tr || !tp) return;
    const int rh = jint(js, "resized_height"), rw = jint(js, "resized_width");
    const int H = jint(js, "height"), W = jint(js, "width");

    /* 1. decode + sample + size through the whole pipeline */
    char *path = test_fixture(media);
    qv_media_opts o = qv_media_default_opts();
    qv_media *m = NULL;
    qv_err err = {0};
    qv_status st = qv_media_open(&m, path, &o, &err);
    CHECK_MSG(st == QV_OK, "%s: %s", media, err.msg);
    if (st) {
        free(path);
        return;
    }
    const qv_media_info *mi = qv_media_get_info(m);
    CHECK(mi->is_image == is_image);
    CHECK_MSG(mi->resized_h == rh && mi->resized_w == rw, "%s resized %dx%d, golden %dx%d", key, mi->resized_w,
              mi->resized_h, rw, rh);
    const cJSON *grid = cJSON_GetObjectItem(js, "grid_thw");
    CHECK(cJSON_GetArraySize(grid) == 3);
    CHECK_MSG(mi->t == cJSON_GetArrayItem(grid, 0)->valueint && mi->gh == cJSON_GetArrayItem(grid, 1)->valueint &&
                  mi->gw == cJSON_GetArrayItem(grid, 2)->valueint,
              "%s grid %d %d %d", key, mi->t, mi->gh, mi->gw);
    CHECK(mi->src_w == W && mi->src_h == H);
    if (!is_image) {
        const cJSON *ind = cJSON_GetObjectItem(js, "indices");
        CHECK(mi->n_frames == cJSON_GetArraySize(ind));
        for (int j = 0; j < mi->n_frames && j < cJSON_GetArraySize(ind); j++)
            CHECK_MSG(mi->indices[j] == cJSON_GetArrayItem(ind, j)->valueint, "%s index %d: %lld", key, j,
                      (long long)mi->indices[j]);
        CHECK(mi->total_frames == jint(js, "total_frames"));
        CHECK(fabs(mi->stream_fps - cJSON_GetObjectItem(js, "fps")->valuedouble) < 1e-9);
        CHECK_MSG(mi->max_pixels == jint(js, "max_pixels") && mi->min_pixels == jint(js, "min_pixels"),
                  "%s budgets %g %g", key, mi->min_pixels, mi->max_pixels);
    } else {
        CHECK(mi->n_frames == 1 && mi->indices[0] == 0);
    }
    run_ctx c = {tf->data, (size_t)H * W * 3, 0, 0, is_image, tp->data, 0, (size_t)mi->gh * mi->gw * QV_PATCH_DIM};
    st = qv_media_run(m, on_pair, on_frame, &c, &err);
    CHECK_MSG(st == QV_OK, "%s run: %s", media, err.msg);
    CHECK(c.n_seen == mi->n_frames);
    CHECK_MSG(c.worst_mad < 1.0, "%s decoded frames: worst mean abs diff %.4f levels", key, c.worst_mad);
    printf("%s: decoded frames worst mean abs diff %.4f levels; pipeline pixel_values max abs diff %.3g\n", key,
           c.worst_mad, c.worst_px);
    qv_media_free(m);
    free(path);

    /* 2. resize of the golden frames */
    int T = is_image ? 1 : (int)tf->shape[0];
    qv_resizer *rz = NULL;
    st = qv_resizer_create(&rz, W, H, rw, rh, is_image ? QV_RESAMPLE_IMAGE : QV_RESAMPLE_VIDEO, &err);
    CHECK(st == QV_OK);
    uint8_t *res = malloc((size_t)T * rh * rw * 3);
    long n_exact = 0, n_total = 0;
    int worst = 0;
    const uint8_t *gr = tr->data;
    for (int f = 0; f < T; f++) {
        uint8_t *o1 = res + (size_t)f * rh * rw * 3;
        qv_resize_rgb(rz, o1, (const uint8_t *)tf->data + (size_t)f * H * W * 3, W * 3, NULL);
        for (int y = 0; y < rh; y++)
            for (int x = 0; x < rw; x++)
                for (int ch = 0; ch < 3; ch++) {
                    int a = o1[((size_t)y * rw + x) * 3 + ch];
                    int b = is_image ? gr[((size_t)y * rw + x) * 3 + ch]
                                     : gr[(((size_t)f * 3 + ch) * rh + y) * rw + x];   /* [T,3,h,w] */
                    int d = abs(a - b);
                    if (d > worst) worst = d;
                    n_exact += d == 0;
                    n_total++;
                }
    }
    qv_resizer_free(rz);
    printf("%s: resize of golden frames: worst %d level(s), %.4f%% exact\n", key, worst, 100.0 * n_exact / n_total);
    if (is_image) CHECK_MSG(worst == 0, "image resize must be bit exact, worst %d", worst);
    else CHECK_MSG(worst <= 1, "video resize worst %d levels", worst);

    /* 3. pixel values from the golden resized frames */
    uint8_t *hwc = malloc((size_t)T * rh * rw * 3);
    for (int f = 0; f < T; f++)
        for (int y = 0; y < rh; y++)
            for (int x = 0; x < rw; x++)
                for (int ch = 0; ch < 3; ch++)
                    hwc[(((size_t)f * rh + y) * rw + x) * 3 + ch] =
                        is_image ? gr[((size_t)y * rw + x) * 3 + ch] : gr[(((size_t)f * 3 + ch) * rh + y) * rw + x];
    float *px = NULL;
    int t, gh, gw;
    st = qv_patchify_frames(&px, &t, &gh, &gw, hwc, T, rh, rw, NULL, &err);
    CHECK(st == QV_OK);
    if (px) {
        CHECK(tp->shape[0] == (int64_t)t * gh * gw && tp->shape[1] == QV_PATCH_DIM);
        double md = 0;
        const float *g = tp->data;
        for (int64_t i = 0; i < tp->shape[0] * QV_PATCH_DIM; i++) {
            double d = fabs((double)px[i] - (double)g[i]);
            if (d > md) md = d;
        }
        printf("%s: pixel_values from golden resized: max abs diff %.3g\n", key, md);
        CHECK_MSG(md <= 1e-6, "%s pixel values max abs diff %g", key, md);
    }
    if (is_image) CHECK_MSG(c.worst_px <= 1e-6, "image pipeline pixel values differ by %g", c.worst_px);
    free(px);
    free(hwc);
    free(res);
}

/* qv preprocess --dump: names, layouts and values of the golden file (without the a./c. prefix). */
static void check_cli(const char *key, const char *media, double px_tol) {
    const char *bin = getenv("QV_BIN");
    if (!bin) {
        printf("QV_BIN not set: CLI check skipped\n");
        return;
    }
    char *in = test_fixture(media);
    char name[64], out[600], cmd[2000], line[8192] = "";
    snprintf(name, sizeof name, "cli_%s.safetensors", key);
    char *dump = test_tmp(name);
    snprintf(cmd, sizeof cmd, "'%s' preprocess '%s' --dump '%s'", bin, in, dump);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (p) {
        if (!fgets(line, sizeof line, p)) line[0] = 0;
        CHECK_MSG(pclose(p) == 0, "%s failed", cmd);
    }
    cJSON *js = cJSON_Parse(line), *g = cJSON_GetObjectItem(golden_json, key);
    CHECK_MSG(js != NULL, "not one JSON line: %s", line);
    if (js && g) {
        const char *keys[] = {"resized_height", "resized_width", "grid_thw", "indices"};
        for (int i = 0; i < 4; i++) {
            const cJSON *a = cJSON_GetObjectItem(js, keys[i]), *b = cJSON_GetObjectItem(g, keys[i]);
            if (!b && !strcmp(keys[i], "indices")) continue;   /* the image has none in the golden */
            CHECK_MSG(a && b && cJSON_Compare(a, b, 1), "%s: %s differs from the golden", key, keys[i]);
        }
        CHECK(cJSON_IsArray(cJSON_GetObjectItem(js, "pts_ms")));
    }
    cJSON_Delete(js);
    qv_st *st = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_st_open(&st, dump, &err) == QV_OK, "%s", err.msg);
    const char *names[] = {"frames_u8", "resized_u8", "pixel_values"};
    for (int i = 0; st && i < 3; i++) {
        snprintf(out, sizeof out, "%s.%s", key, names[i]);
        const qv_tensor *a = qv_st_get(st, names[i]), *b = qv_st_get(golden, out);
        CHECK_MSG(a && b && a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes &&
                      !memcmp(a->shape, b->shape, sizeof a->shape[0] * a->ndim),
                  "%s: %s has not the golden's dtype/shape", key, names[i]);
        if (!a || !b || a->nbytes != b->nbytes) continue;
        double worst = 0, sum = 0;
        if (a->dtype == QV_U8) {
            const uint8_t *x = a->data, *y = b->data;
            for (uint64_t k = 0; k < a->nbytes; k++) {
                int d = abs((int)x[k] - (int)y[k]);
                sum += d;
                if (d > worst) worst = d;
            }
            if (i == 0) CHECK_MSG(sum / (double)a->nbytes < 1.0, "%s frames_u8 mean abs diff %g", key, sum / a->nbytes);
            else CHECK_MSG(worst <= 1, "%s resized_u8 worst %g levels", key, worst);
        } else {
            const float *x = a->data, *y = b->data;
            for (uint64_t k = 0; k < a->nbytes / 4; k++) {
                double d = fabs((double)x[k] - (double)y[k]);
                if (d > worst) worst = d;
            }
            CHECK_MSG(worst <= px_tol, "%s pixel_values worst %g (tolerance %g)", key, worst, px_tol);
        }
        printf("cli %s %s: worst diff %g\n", key, names[i], worst);
    }
    qv_st_free(st);
    remove(dump);
    /* usage and input errors: non-zero exit, one line on stderr */
    snprintf(cmd, sizeof cmd, "'%s' preprocess '%s' --fps abc 2>/dev/null", bin, in);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    snprintf(cmd, sizeof cmd, "'%s' preprocess 2>/dev/null", bin);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    snprintf(cmd, sizeof cmd, "'%s' preprocess '%s.missing' 2>/dev/null", bin, in);
    CHECK(WEXITSTATUS(system(cmd)) == 1);
    free(in);
    free(dump);
}

int main(void) {
    char *jp = test_fixture("golden/preprocess.json");
    char *sp = test_fixture("golden/preprocess.safetensors");
    char *text = NULL;
    size_t len = 0;
    qv_err err = {0};
    CHECK_MSG(qv_read_file(jp, &text, &len, 0, &err) == QV_OK, "%s", err.msg);
    golden_json = text ? cJSON_Parse(text) : NULL;
    CHECK(golden_json != NULL);
    CHECK_MSG(qv_st_open(&golden, sp, &err) == QV_OK, "%s", err.msg);
    if (golden_json && golden) {
        check_case("a", "media/sample_a.mp4", 0);
        check_case("c", "media/image_c.png", 1);
        /* video: the pipeline resizes its own decoded frames (equal to the golden frames), so pixel values
         * may differ by one resize level: 1/255/std < 0.0151; image: exact */
        /* the all-at-once convenience gives the same pixel values as the stream (image: the golden's) */
        {
            char *img = test_fixture("media/image_c.png");
            qv_media *m = NULL;
            float *px = NULL;
            qv_media_opts o = qv_media_default_opts();
            CHECK_MSG(qv_media_load(&m, &px, img, &o, &err) == QV_OK, "%s", err.msg);
            const qv_tensor *g = qv_st_get(golden, "c.pixel_values");
            if (m && px && g) {
                const qv_media_info *mi = qv_media_get_info(m);
                CHECK((int64_t)mi->t * mi->gh * mi->gw == g->shape[0]);
                double md = 0;
                for (int64_t i = 0; i < g->shape[0] * QV_PATCH_DIM; i++) {
                    double d = fabs((double)px[i] - (double)((const float *)g->data)[i]);
                    if (d > md) md = d;
                }
                CHECK_MSG(md <= 1e-6, "qv_media_load image pixel values differ by %g", md);
            }
            free(px);
            qv_media_free(m);
            free(img);
        }
        check_cli("a", "media/sample_a.mp4", 0.0151);
        check_cli("c", "media/image_c.png", 1e-6);
    }
    cJSON_Delete(golden_json);
    qv_st_free(golden);
    free(text);
    free(jp);
    free(sp);
    return test_done();
}
