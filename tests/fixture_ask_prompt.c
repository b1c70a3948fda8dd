/* fixture_ask_prompt.c — pipeline/prompt.c on its own: the chat template against the renders of
 * transformers in golden/chat_template.json, raw prompt parsing (markers, errors), the friendly prompt
 * builder against the golden cases' prompt_raw (chat for tiny_video, base for tiny_image/realdims_video),
 * and tokenization with the pads expanded against their input_ids. */
#include "test.h"
#include "fixture_ask_check.h"
#include "prompt.h"

static void check_chat_template(void) {
    cJSON *cases = ac_golden("chat_template");
    CHECK(cJSON_IsArray(cases));
    int k = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *msgs = cJSON_GetObjectItem(c, "messages");
        int n = cJSON_GetArraySize(msgs);
        qv_chat_msg m[16];
        qv_chat_part parts[16][16];
        CHECK(n <= 16);
        for (int i = 0; i < n && i < 16; i++) {
            const cJSON *jm = cJSON_GetArrayItem(msgs, i), *content = cJSON_GetObjectItem(jm, "content");
            m[i] = (qv_chat_msg){cJSON_GetObjectItem(jm, "role")->valuestring, NULL, parts[i], 0};
            if (cJSON_IsString(content)) {
                m[i].content = content->valuestring;
                continue;
            }
            const cJSON *p;
            cJSON_ArrayForEach(p, content) {
                const char *type = cJSON_GetObjectItem(p, "type")->valuestring;
                const cJSON *v = cJSON_GetObjectItem(p, type);
                parts[i][m[i].n_parts++] = (qv_chat_part){type, cJSON_IsString(v) ? v->valuestring : ""};
            }
        }
        char *out = NULL;
        qv_err err = {0};
        int gen = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
        int vid = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_vision_id"));
        CHECK(qv_prompt_render_chat(m, n, gen, vid, 0, &out, &err) == QV_OK);
        const char *want = cJSON_GetObjectItem(c, "rendered")->valuestring;
        CHECK_MSG(out && strcmp(out, want) == 0, "chat template case %d:\n got  %s\n want %s", k, out, want);
        free(out);
        k++;
    }
    CHECK(k == 4);
    cJSON_Delete(cases);
}

static void check_parse(void) {
    qv_prompt_seg *s;
    int n;
    qv_err err = {0};
    CHECK(qv_prompt_parse("a{{video:x.mp4}}{{image:y.png}}b {{c}}", &s, &n, &err) == QV_OK);
    CHECK(n == 4);
    if (n == 4) {
        CHECK(s[0].kind == QV_SEG_TEXT && strcmp(s[0].text, "a") == 0);
        CHECK(s[1].kind == QV_SEG_VIDEO && strcmp(s[1].text, "x.mp4") == 0);
        CHECK(s[2].kind == QV_SEG_IMAGE && strcmp(s[2].text, "y.png") == 0);
        CHECK(s[3].kind == QV_SEG_TEXT && strcmp(s[3].text, "b {{c}}") == 0);
    }
    qv_prompt_segs_free(s, n);
    CHECK(qv_prompt_parse("x {{video:a.mp4", &s, &n, &err) == QV_ERR_INVALID);
    CHECK(strstr(err.msg, "closing") != NULL);
    CHECK(qv_prompt_parse("{{image:}}", &s, &n, &err) == QV_ERR_INVALID);
    char *out = NULL;
    CHECK(qv_prompt_build(0, NULL, NULL, 0, "", NULL, &out, &err) == QV_ERR_INVALID && !out);
    CHECK(qv_prompt_build(1, NULL, NULL, 0, "tell {{video:/etc/passwd}}", NULL, &out, &err) == QV_ERR_INVALID);
    qv_prompt_media bad = {"a}}b.mp4", 1};
    CHECK(qv_prompt_build(0, NULL, &bad, 1, "q", NULL, &out, &err) == QV_ERR_INVALID);
    qv_prompt_media two[2] = {{"a.png", 0}, {"b.mp4", 1}};
    CHECK(qv_prompt_build(0, NULL, two, 2, "Why?", "Q: {question}\nA:", &out, &err) == QV_OK);
    CHECK(out && strcmp(out, "{{image:a.png}}{{video:b.mp4}}Q: Why?\nA:") == 0);
    free(out);
    CHECK(qv_prompt_build(1, "Be brief.", two, 2, "Compare them.", NULL, &out, &err) == QV_OK);
    CHECK(out && strcmp(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{{image:a.png}}{{video:b.mp4}}"
                             "Compare them.<|im_end|>\n<|im_start|>assistant\n") == 0);
    free(out);
}

/* friendly form -> the golden prompt_raw, then tokenized -> input_ids */
static void check_case(const qv_tokenizer *tok, const char *label, int chat, const char *path, int is_video,
                       const char *question, const char *framing) {
    cJSON *g = ac_golden(label);
    CHECK(g != NULL);
    if (!g) return;
    qv_prompt_media m = {path, is_video};
    char *out = NULL;
    qv_err err = {0};
    CHECK(qv_prompt_build(chat, NULL, &m, 1, question, framing, &out, &err) == QV_OK);
    const char *want = cJSON_GetObjectItem(g, "prompt_raw")->valuestring;
    CHECK_MSG(out && strcmp(out, want) == 0, "%s: built prompt\n got  %s\n want %s", label, out, want);
    qv_prompt_seg *s;
    int n;
    if (out && qv_prompt_parse(out, &s, &n, &err) == QV_OK) {
        const cJSON *grid = cJSON_GetArrayItem(cJSON_GetObjectItem(g, is_video ? "video_grid_thw" : "image_grid_thw"), 0);
        int64_t nt = (int64_t)cJSON_GetArrayItem(grid, 0)->valueint * (cJSON_GetArrayItem(grid, 1)->valueint / 2) *
                     (cJSON_GetArrayItem(grid, 2)->valueint / 2);
        qv_vision_ids v = {qv_tok_id(tok, "<|vision_start|>", 16), qv_tok_id(tok, "<|vision_end|>", 14),
                           qv_tok_id(tok, "<|image_pad|>", 13), qv_tok_id(tok, "<|video_pad|>", 13)};
        int32_t *ids = NULL;
        int64_t n_ids = 0, pad = -1;
        CHECK(qv_prompt_tokenize(tok, s, n, &v, &nt, &ids, &n_ids, &pad, &err) == QV_OK);
        const cJSON *want_ids = cJSON_GetObjectItem(g, "input_ids");
        int same = n_ids == cJSON_GetArraySize(want_ids);
        for (int64_t i = 0; same && i < n_ids; i++) same = ids[i] == cJSON_GetArrayItem(want_ids, (int)i)->valueint;
        CHECK_MSG(same, "%s: tokenized prompt (%lld ids) equals input_ids (%d)", label, (long long)n_ids,
                  cJSON_GetArraySize(want_ids));
        CHECK(pad >= 1 && ids && ids[pad - 1] == v.vision_start && ids[pad] == (is_video ? v.video_pad : v.image_pad));
        free(ids);
        qv_prompt_segs_free(s, n);
    }
    free(out);
    cJSON_Delete(g);
}

int main(void) {
    check_chat_template();
    check_parse();
    char *model = test_fixture("models/tiny-qwen2vl");
    char *cfg_path = qv_path_join(model, "tokenizer_config.json"), *cfg = NULL;
    size_t len;
    qv_err err = {0};
    CHECK(qv_read_file(cfg_path, &cfg, &len, 0, &err) == QV_OK);
    CHECK(qv_prompt_template_is_chat(cfg, len) == 1);
    CHECK(qv_prompt_template_is_chat("{\"chat_template\": \"{{ messages }}\"}", 31) == 0);
    free(cfg);
    free(cfg_path);
    qv_tokenizer *tok = NULL;
    CHECK(qv_tok_load(&tok, model, &err) == QV_OK);
    if (tok) {
        check_case(tok, "tiny_video", 1, "media/sample_a.mp4", 1, "What is happening in this video?", NULL);
        check_case(tok, "realdims_video", 0, "media/sample_a.mp4", 1, "What is shown in this video?", NULL);
        check_case(tok, "tiny_image", 0, "media/image_c.png", 0, "A picture of", "{question}");
    }
    qv_tok_free(tok);
    free(model);
    return test_done();
}
