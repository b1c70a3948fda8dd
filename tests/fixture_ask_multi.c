/* fixture_ask_multi.c — a prompt with several vision inputs (video before image, text between): the dumped
 * vision_embeds put images before videos (the reference's order) and each block equals the golden single-input
 * embeddings (reference path, 1e-4); every pad run sits where its marker was; the positions follow the
 * get_rope_index walk of spec section 6 (re-derived here from the ids and grids), and the greedy ids do not
 * depend on the prefill chunk. */
#include "test.h"
#include "fixture_ask_check.h"

static float *rows_of(const qv_st *st, const char *name, int64_t row0, int64_t n, int64_t *cols) {
    const qv_tensor *t = qv_st_get(st, name);
    if (!t || t->ndim != 2 || row0 + n > t->shape[0]) return NULL;
    float *all = ac_f32(t);
    *cols = t->shape[1];
    float *out = malloc((size_t)(n * *cols) * sizeof *out);
    memcpy(out, all + row0 * *cols, (size_t)(n * *cols) * sizeof *out);
    free(all);
    return out;
}

static cJSON *run(const char *prompt_file, const char *model, const char *root, const char *dump, const char *extra) {
    char cmd[4096];
    char *out = test_tmp("multi.json");
    snprintf(cmd, sizeof cmd,
             "'%s' ask --model '%s' --raw-file '%s' --media-root '%s' --ref --greedy --no-stop --max-tokens 6 --json "
             "--dump '%s' %s -q > '%s'", ac_bin(), model, prompt_file, root, dump, extra, out);
    int rc = ac_run(cmd);
    CHECK_MSG(rc == 0, "qv ask exited %d: %s", rc, cmd);
    cJSON *j = rc == 0 ? ac_load_json(out) : NULL;
    free(out);
    return j;
}

int main(void) {
    char *model = test_fixture("models/tiny-qwen2vl"), *root = test_fixture(""), *pf = test_tmp("multi.prompt");
    char *dump = test_tmp("multi.safetensors"), *dump7 = test_tmp("multi7.safetensors");
    const char *prompt = "Compare {{video:media/sample_a.mp4}} with {{image:media/image_c.png}} please.";
    CHECK(ac_write_text(pf, prompt));
    cJSON *r = run(pf, model, root, dump, "");
    cJSON *r7 = run(pf, model, root, dump7, "--chunk 7");
    qv_st *d = NULL, *gv = NULL, *gi = NULL;
    char *gvp = test_fixture("golden/tiny_video.safetensors"), *gip = test_fixture("golden/tiny_image.safetensors");
    qv_err err = {0};
    CHECK(qv_st_open(&d, dump, &err) == QV_OK);
    CHECK(qv_st_open(&gv, gvp, &err) == QV_OK && qv_st_open(&gi, gip, &err) == QV_OK);
    if (r && r7 && d && gv && gi) {
        CHECK_MSG(ac_ids_equal(cJSON_GetObjectItem(r, "generated_ids"), cJSON_GetObjectItem(r7, "generated_ids")),
                  "greedy ids independent of the chunk");
        /* grids in prompt order: video then image */
        const cJSON *grids = cJSON_GetObjectItem(r, "grids");
        CHECK(cJSON_GetArraySize(grids) == 2);
        CHECK(strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(grids, 0), "kind")->valuestring, "video") == 0);
        CHECK(strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(grids, 1), "kind")->valuestring, "image") == 0);
        /* vision_embeds: image rows (35) first, then video rows (432) */
        int64_t c1, c2, c3, c4;
        float *img = rows_of(d, "vision_embeds", 0, 35, &c1), *vid = rows_of(d, "vision_embeds", 35, 432, &c2);
        float *gimg = rows_of(gi, "vision_embeds", 0, 35, &c3), *gvid = rows_of(gv, "vision_embeds", 0, 432, &c4);
        const qv_tensor *ve = qv_st_get(d, "vision_embeds");
        CHECK(ve && ve->shape[0] == 35 + 432);
        CHECK(img && vid && gimg && gvid);
        if (img && vid && gimg && gvid) {
            double a = test_rel_l2(img, gimg, 35 * c1), b = test_rel_l2(vid, gvid, 432 * c2);
            fprintf(stderr, "image block rel L2 %.3g, video block %.3g\n", a, b);
            CHECK_MSG(a < 1e-4 && b < 1e-4, "vision_embeds blocks: image %g video %g", a, b);
        }
        free(img), free(vid), free(gimg), free(gvid);
        CHECK(qv_st_get(d, "image_grid_thw") && qv_st_get(d, "video_grid_thw"));
        /* positions per the walk of spec section 6 */
        const cJSON *ids = cJSON_GetObjectItem(r, "prompt_ids");
        int n = cJSON_GetArraySize(ids);
        const qv_tensor *pt = qv_st_get(d, "position_ids");
        CHECK(pt && pt->dtype == QV_I64 && pt->shape[0] == 3 && pt->shape[1] == n);
        if (pt && pt->shape[1] == n) {
            const int64_t *pos = pt->data;
            int64_t next = 0;
            int ok = 1, vi = 0;
            for (int i = 0; i < n && ok;) {
                int id = cJSON_GetArrayItem(ids, i)->valueint;
                if (id == 151655 || id == 151656) {
                    const cJSON *gj = cJSON_GetObjectItem(cJSON_GetArrayItem(grids, vi++), "grid_thw");
                    int t = cJSON_GetArrayItem(gj, 0)->valueint, h = cJSON_GetArrayItem(gj, 1)->valueint / 2,
                        w = cJSON_GetArrayItem(gj, 2)->valueint / 2;
                    int64_t s = next;
                    for (int a = 0; a < t; a++)
                        for (int y = 0; y < h; y++)
                            for (int x = 0; x < w; x++, i++)
                                ok &= pos[i] == s + a && pos[n + i] == s + y && pos[2 * n + i] == s + x;
                    int m = t > h ? t : h;
                    next = s + (m > w ? m : w);
                } else {
                    ok &= pos[i] == next && pos[n + i] == next && pos[2 * n + i] == next;
                    next++;
                    i++;
                }
            }
            CHECK_MSG(ok, "position_ids follow the get_rope_index walk");
            CHECK(cJSON_GetObjectItem(r, "rope_delta")->valuedouble == (double)(next - n));
        }
    }
    qv_st_free(d), qv_st_free(gv), qv_st_free(gi);
    cJSON_Delete(r), cJSON_Delete(r7);
    remove(dump), remove(dump7);
    free(model), free(root), free(pf), free(dump), free(dump7), free(gvp), free(gip);
    return test_done();
}
