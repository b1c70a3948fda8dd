/* fixture_chunk.c — chunked prefill through the whole engine (issue 5, spec section 8): tiny_video from the
 * golden pixel values on the reference path, prefilled in chunks of 1, 7, 64 and the whole prompt, gives
 * the same greedy ids (equal to the golden ones) and logits_last within 1e-5 relative L2 of the one-shot
 * prefill; lm.norm (all rows, gathered over the chunks) too. */
#include "test.h"
#include "fixture_ask_check.h"

static int run(int chunk, const char *prompt, const char *model, const char *pv, const char *root, int n_gen,
               char **dump_out, cJSON **json_out) {
    char name[64], cmd[4096];
    snprintf(name, sizeof name, "chunk%d.safetensors", chunk);
    *dump_out = test_tmp(name);
    snprintf(name, sizeof name, "chunk%d.json", chunk);
    char *out = test_tmp(name);
    snprintf(cmd, sizeof cmd,
             "'%s' ask --model '%s' --raw-file '%s' --media-root '%s' --pixel-values '%s' --ref --greedy --no-stop "
             "--max-tokens %d --chunk %d --json --dump '%s' -q > '%s'",
             ac_bin(), model, prompt, root, pv, n_gen, chunk, *dump_out, out);
    int rc = ac_run(cmd);
    CHECK_MSG(rc == 0, "chunk %d: qv ask exited %d", chunk, rc);
    *json_out = rc == 0 ? ac_load_json(out) : NULL;
    free(out);
    return rc == 0 && *json_out;
}

int main(void) {
    char *model = test_fixture("models/tiny-qwen2vl"), *pv = test_fixture("golden/tiny_video.safetensors");
    char *root = test_fixture(""), *prompt = test_tmp("tiny_video.prompt");
    cJSON *g = ac_golden("tiny_video");
    CHECK(g != NULL);
    if (!g) return test_done();
    CHECK(ac_write_text(prompt, cJSON_GetObjectItem(g, "prompt_raw")->valuestring));
    int n_gen = cJSON_GetArraySize(cJSON_GetObjectItem(g, "greedy_ids"));
    int n_prompt = cJSON_GetArraySize(cJSON_GetObjectItem(g, "input_ids"));
    char *whole_dump;
    cJSON *whole;
    if (!run(n_prompt, prompt, model, pv, root, n_gen, &whole_dump, &whole)) return test_done();
    CHECK_MSG(ac_greedy_ok(cJSON_GetObjectItem(whole, "generated_ids"), g, 1, 0) == n_gen, "whole prompt: greedy ids");
    qv_st *ws = NULL;
    qv_err err = {0};
    CHECK_MSG(qv_st_open(&ws, whole_dump, &err) == QV_OK, "%s", err.msg);
    static const int chunks[] = {1, 7, 64};
    for (int c = 0; c < 3 && ws; c++) {
        char *dump;
        cJSON *r;
        if (!run(chunks[c], prompt, model, pv, root, n_gen, &dump, &r)) continue;
        CHECK_MSG(ac_ids_equal(cJSON_GetObjectItem(r, "generated_ids"), cJSON_GetObjectItem(whole, "generated_ids")),
                  "chunk %d: greedy ids equal the one-shot ones", chunks[c]);
        CHECK_MSG(ac_ids_equal(cJSON_GetObjectItem(r, "prompt_ids"), cJSON_GetObjectItem(g, "input_ids")),
                  "chunk %d: prompt ids", chunks[c]);
        qv_st *cs = NULL;
        CHECK_MSG(qv_st_open(&cs, dump, &err) == QV_OK, "%s", err.msg);
        if (cs) {
            double rl = ac_rel(cs, ws, "logits_last"), rn = ac_rel(cs, ws, "lm.norm");
            fprintf(stderr, "chunk %d: logits_last rel L2 %.3g, lm.norm %.3g vs one-shot\n", chunks[c], rl, rn);
            CHECK_MSG(rl >= 0 && rl < 1e-5, "chunk %d: logits_last rel L2 %g", chunks[c], rl);
            CHECK_MSG(rn >= 0 && rn < 1e-5, "chunk %d: lm.norm rel L2 %g", chunks[c], rn);
            CHECK_MSG(ac_i64_equal(qv_st_get(cs, "position_ids"), qv_st_get(ws, "position_ids")),
                      "chunk %d: position_ids", chunks[c]);
        }
        qv_st_free(cs);
        cJSON_Delete(r);
        remove(dump);
        free(dump);
    }
    qv_st_free(ws);
    remove(whole_dump);
    free(whole_dump);
    cJSON_Delete(whole);
    cJSON_Delete(g);
    free(model);
    free(pv);
    free(root);
    free(prompt);
    return test_done();
}
