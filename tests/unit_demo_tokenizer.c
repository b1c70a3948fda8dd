/* unit_demo_tokenizer.c — the demo checkpoint's own tokenizer and configs (pipeline/demo.c): the real
 * tokenizer code (tokenizer/) loads the tokenizer.json qv writes, specials sit at the ids the config names,
 * any UTF-8 text round-trips exactly (byte-level), the learned merges shorten common English, and the
 * config parses with the ids matching. Also the Y4M writer's size arithmetic. */
#include "config.h"
#include "demo.h"
#include "test.h"
#include "tokenizer.h"

#include <sys/stat.h>

static void roundtrip(const qv_tokenizer *t, const char *s) {
    int32_t *ids = NULL;
    size_t n = 0;
    qv_err err = {0};
    CHECK_MSG(qv_tok_encode(t, s, strlen(s), &ids, &n, &err) == QV_OK, "%s", err.msg);
    char out[4096];
    size_t need = qv_tok_decode(t, ids, n, 0, out, sizeof out);
    CHECK_MSG(need == strlen(s) && strcmp(out, s) == 0, "round trip of '%s' gave '%s'", s, out);
    free(ids);
}

int main(void) {
    qv_demo_tok tk;
    qv_err err = {0};
    CHECK(qv_demo_tokenizer_build(&tk, 200, &err) == QV_OK);
    CHECK(tk.n_merges > 50 && tk.n_merges <= 200);
    CHECK(tk.special_base >= 256 + 1 && tk.n_vocab == tk.special_base + QV_DEMO_N_SPECIAL);
    char *dir = test_tmp("demo_tok");
    mkdir(dir, 0755);
    CHECK(qv_demo_write_tokenizer(&tk, dir, &err) == QV_OK);
    CHECK(qv_demo_write_configs(&tk, dir, &err) == QV_OK);

    qv_tokenizer *t = NULL;
    CHECK_MSG(qv_tok_load(&t, dir, &err) == QV_OK, "load: %s", err.msg);
    if (t) {
        CHECK(qv_tok_vocab_size(t) == tk.n_vocab);
        for (int s = 0; s < QV_DEMO_N_SPECIAL; s++) {
            const char *name = qv_demo_specials[s];
            CHECK_MSG(qv_tok_id(t, name, strlen(name)) == tk.special_base + s, "%s", name);
            CHECK(qv_tok_is_special(t, tk.special_base + s));
        }
        /* bytes: id = byte value, in byte-level form ('A' is itself, ' ' is U+0120) */
        CHECK(qv_tok_id(t, "A", 1) == 'A');
        CHECK(qv_tok_id(t, "\xc4\xa0", 2) == ' ');
        roundtrip(t, "Question: What happens in this video? Answer:");
        roundtrip(t, "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87  tabs\tand\nnewlines\r\n 123");
        roundtrip(t, "<|vision_start|><|video_pad|><|video_pad|><|vision_end|>Question: ok");
        /* specials in text are single ids; merges make common words shorter than their bytes */
        const char *q = "<|vision_start|><|video_pad|><|vision_end|>Question: What is the video about? Answer:";
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(qv_tok_encode(t, q, strlen(q), &ids, &n, &err) == QV_OK);
        CHECK(n >= 3 && ids[0] == tk.special_base + 9 && ids[1] == tk.special_base + 13 && ids[2] == tk.special_base + 10);
        size_t text_bytes = strlen(q) - strlen("<|vision_start|><|video_pad|><|vision_end|>");
        CHECK_MSG(n - 3 < text_bytes / 2, "%zu tokens for %zu bytes", n - 3, text_bytes);
        for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < tk.n_vocab);
        free(ids);
        qv_tok_free(t);
    }

    qv_model_config mc;
    CHECK_MSG(qv_config_load_dir(&mc, dir, &err) == QV_OK, "config: %s", err.msg);
    CHECK(mc.text.vocab == tk.n_vocab);
    CHECK(mc.text.eos_id == tk.special_base && mc.text.bos_id == tk.special_base);
    CHECK(mc.text.vision_start_id == tk.special_base + 9 && mc.text.vision_end_id == tk.special_base + 10);
    CHECK(mc.text.image_token_id == tk.special_base + 12 && mc.text.video_token_id == tk.special_base + 13);
    CHECK(mc.text.mrope_section[0] + mc.text.mrope_section[1] + mc.text.mrope_section[2] == mc.text.head_dim / 2);
    CHECK(mc.gen.n_eos >= 1 && mc.gen.eos_ids[0] == tk.special_base);

    /* the build is deterministic */
    qv_demo_tok tk2;
    CHECK(qv_demo_tokenizer_build(&tk2, 200, &err) == QV_OK);
    int same = tk2.n_merges == tk.n_merges;
    for (int i = 0; same && i < tk.n_merges; i++) same = !strcmp(tk.merges[i], tk2.merges[i]);
    CHECK(same);
    qv_demo_tokenizer_free(&tk2);
    qv_demo_tokenizer_free(&tk);
    qv_demo_tokenizer_free(NULL);

    char *y4m = test_tmp("demo_tok/clip.y4m");
    CHECK(qv_demo_write_y4m(y4m, 64, 48, 10, 1.0, &err) == QV_OK);
    struct stat st;
    CHECK(stat(y4m, &st) == 0 && st.st_size > 10 * (64 * 48 * 3 / 2) && st.st_size < 10 * (64 * 48 * 3 / 2 + 8) + 64);
    CHECK(qv_demo_write_y4m(y4m, 63, 48, 10, 1.0, &err) == QV_ERR_INVALID);
    free(y4m);
    free(dir);
    return test_done();
}
