/* cmd_detokenize.c — qv detokenize: a JSON array of token ids on stdin -> the text they decode to (UTF-8,
 * invalid byte sequences as U+FFFD, exactly as Hugging Face's decode), written without a trailing newline. */
#include "cli.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: qv detokenize [--model DIR | --tokenizer FILE] [--skip-special] < ids.json\n\n"
            "Reads a JSON array of token ids on stdin and writes the decoded text to stdout (no newline added).\n\n"
            "options:\n"
            "  --model DIR       model folder: tokenizer.json, else vocab.json + merges.txt + tokenizer_config.json\n"
            "                    (default: $QV_MODEL)\n"
            "  --tokenizer FILE  a tokenizer.json file instead of a model folder\n"
            "  --skip-special    drop special tokens (<|im_start|>, <|endoftext|>, ...)\n"
            "  -h, --help        this help\n\n"
            "examples:\n"
            "  echo '[9707,1879]' | qv detokenize --model ~/Qwen2-VL-7B                    # Hello world\n"
            "  echo '[151644,872,198]' | qv detokenize --model ~/Qwen2-VL-7B --skip-special  # user + newline\n");
}

int qv_cmd_detokenize(int argc, char **argv) {
    const char *path;
    int skip = 0;
    int rc = cli_tokenizer_args("detokenize", argc, argv, "--skip-special", &skip, &path, usage);
    if (rc >= 0) return rc;

    size_t len = 0;
    char *text = cli_read_stdin(&len);
    if (!text) return cli_fail("detokenize: cannot read stdin");
    cJSON *arr = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return cli_fail("detokenize: stdin is not a JSON array of token ids");
    }
    qv_err err = {0};
    qv_tokenizer *tok = NULL;
    if (qv_tok_load(&tok, path, &err) != QV_OK) {
        cJSON_Delete(arr);
        return cli_fail("%s", err.msg);
    }
    size_t n = (size_t)cJSON_GetArraySize(arr), k = 0;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    rc = ids ? 0 : cli_fail("detokenize: out of memory");
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        if (rc) break;
        double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
        if (!(d >= 0 && d < qv_tok_vocab_size(tok)) || d != (double)(int32_t)d || !qv_tok_str(tok, (int32_t)d, NULL))
            rc = cli_fail("detokenize: item %zu is not a token id of this tokenizer (0..%d)", k + 1,
                          qv_tok_vocab_size(tok) - 1);
        else ids[k++] = (int32_t)d;
    }
    cJSON_Delete(arr);
    if (!rc) {
        size_t need = qv_tok_decode(tok, ids, k, skip, NULL, 0);
        char *out = malloc(need + 1);
        if (!out) rc = cli_fail("detokenize: out of memory");
        else {
            qv_tok_decode(tok, ids, k, skip, out, need + 1);
            if (fwrite(out, 1, need, stdout) != need || fflush(stdout) != 0)
                rc = cli_fail("detokenize: cannot write the output");
            free(out);
        }
    }
    free(ids);
    qv_tok_free(tok);
    return rc;
}
