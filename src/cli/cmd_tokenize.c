/* cmd_tokenize.c — qv tokenize: raw text on stdin -> the token ids (or token strings) as a JSON array on
 * one line, with the model's Qwen2 tokenizer (tokenizer/tokenizer.h). Added/special tokens written in the
 * text ("<|im_start|>") become their ids, as Hugging Face does with add_special_tokens=False. */
#include "cli.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: qv tokenize [--model DIR | --tokenizer FILE] [--tokens] < text\n\n"
            "Reads raw UTF-8 text on stdin (all of it, newlines and NUL bytes included) and prints its token ids\n"
            "as a JSON array on one line. Special tokens written in the text (<|im_start|>, <|video_pad|>, ...)\n"
            "are recognised.\n\n"
            "options:\n"
            "  --model DIR       model folder: tokenizer.json, else vocab.json + merges.txt + tokenizer_config.json\n"
            "                    (default: $QV_MODEL)\n"
            "  --tokenizer FILE  a tokenizer.json file instead of a model folder\n"
            "  --tokens          print the token strings (byte-level form, e.g. \"\\u0120world\") instead of ids\n"
            "  -h, --help        this help\n\n"
            "examples:\n"
            "  echo -n 'Hello world' | qv tokenize --model ~/Qwen2-VL-7B          # [9707,1879]\n"
            "  printf 'Hello world' | qv tokenize --model ~/Qwen2-VL-7B --tokens   # [\"Hello\",\"Ġworld\"]\n"
            "  qv tokenize --tokenizer tokenizer.json < prompt.txt | qv detokenize --tokenizer tokenizer.json\n");
}

/* a JSON string of s[0..n) (valid UTF-8 passes through; control characters and quotes escaped) */
static void put_json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7F) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

int qv_cmd_tokenize(int argc, char **argv) {
    const char *path;
    int tokens = 0;
    int rc = cli_tokenizer_args("tokenize", argc, argv, "--tokens", &tokens, &path, usage);
    if (rc >= 0) return rc;

    qv_err err = {0};
    qv_tokenizer *tok = NULL;
    if (qv_tok_load(&tok, path, &err) != QV_OK) return cli_fail("%s", err.msg);
    size_t len = 0;
    char *text = cli_read_stdin(&len);
    if (!text) {
        qv_tok_free(tok);
        return cli_fail("tokenize: cannot read stdin");
    }
    int32_t *ids = NULL;
    size_t n = 0;
    qv_status st = qv_tok_encode(tok, text, len, &ids, &n, &err);
    free(text);
    if (st != QV_OK) {
        qv_tok_free(tok);
        return cli_fail("%s", err.msg);
    }
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        if (i) putchar(',');
        if (tokens) {
            size_t sl;
            const char *s = qv_tok_str(tok, ids[i], &sl);
            put_json_string(s ? s : "", s ? sl : 0);
        } else {
            printf("%d", ids[i]);
        }
    }
    puts("]");
    free(ids);
    qv_tok_free(tok);
    if (fflush(stdout) != 0 || ferror(stdout)) return cli_fail("tokenize: cannot write the output");
    return 0;
}
