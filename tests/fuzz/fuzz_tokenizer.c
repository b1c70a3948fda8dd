/* fuzz_tokenizer.c — tokenizer.json through qv_tok_load (the seeds: the fixture tokenizer cut down to 400
 * tokens); an accepted tokenizer then encodes and decodes a few texts, with every id in range. */
#include "fuzz_common.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 20)) return 0;
    const char *path = fuzz_file("tokenizer.json", data, size);
    qv_tokenizer *tok = NULL;
    qv_err err = {0};
    if (qv_tok_load(&tok, path, &err) != QV_OK) {
        if (!err.msg[0]) abort();
        return 0;
    }
    static const char *texts[] = {"Hello, world! It's 2024.", "<|im_start|>user\n\xe4\xbd\xa0\xe5\xa5\xbd<|im_end|>", "  \n\t x\xcc\x81", ""};
    for (int k = 0; k < 4; k++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (qv_tok_encode(tok, texts[k], strlen(texts[k]), &ids, &n, NULL) == QV_OK) {
            int V = qv_tok_vocab_size(tok);
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= V) abort();
            char out[4096];
            qv_tok_decode(tok, ids, n, 0, out, sizeof out);
        }
        free(ids);
    }
    qv_tok_free(tok);
    return 0;
}
