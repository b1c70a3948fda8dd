/* demo.h — the files of qv's demo checkpoint, made without any download: a byte-level BPE tokenizer
 * written by qv itself and a small Qwen2-VL config whose vocabulary and special ids match it. The weights
 * come from the formula generator (src/genweights.h); the demo clip from pipeline's writer below or the
 * ffmpeg command line (src/cli/cmd_demo.c).
 *
 *   qv_demo_tok tk;  qv_demo_tokenizer_build(&tk, 200, &err);   // 256 bytes + learned merges + 14 specials
 *   qv_demo_write_tokenizer(&tk, "qv-demo", &err);              // tokenizer.json, tokenizer_config.json
 *   qv_demo_write_configs(&tk, "qv-demo/src", &err);            // config.json, generation_config.json, ...
 *   qv_demo_tokenizer_free(&tk);
 *
 * tokenizer.json has the layout of Qwen2's (NFC normalizer, the Qwen2 Split regex + ByteLevel
 * pre-tokenizer, ByteLevel decoder, BPE model with merges as "a b" strings, added_tokens), so the real
 * tokenizer code loads it: ids 0..255 are the 256 bytes (GPT-2 byte-to-unicode symbols, id = byte value),
 * then one id per learned merge, then the 14 Qwen2-VL special tokens (<|endoftext|> ... <|video_pad|>) in
 * their Qwen2 order. The merges are learned by plain BPE (most frequent adjacent pair, ties by the pair's
 * text) over English text carried in this file, split into words roughly as the Qwen2 pattern does.
 * The config is "base" (no chat template): prompts take the "Question: ... Answer:" form. */
#ifndef QV_DEMO_H
#define QV_DEMO_H

#include <stdint.h>
#include "core.h"

#define QV_DEMO_N_SPECIAL 14

typedef struct {
    char **vocab;         /* [n_vocab] token strings in byte-level form (id = index), specials last */
    int n_vocab;          /* 256 + n_merges' new tokens + 14 */
    char **merges;        /* [n_merges] "a b" */
    int n_merges;
    int special_base;     /* id of <|endoftext|>; the 14 specials are special_base .. special_base+13 */
} qv_demo_tok;

/* The 14 special tokens in id order (<|endoftext|> first, <|video_pad|> last). */
extern const char *const qv_demo_specials[QV_DEMO_N_SPECIAL];

/* Builds the tokenizer with at most max_merges learned merges (0: bytes only). */
qv_status qv_demo_tokenizer_build(qv_demo_tok *tk, int max_merges, qv_err *err);
void qv_demo_tokenizer_free(qv_demo_tok *tk);   /* NULL-safe */

/* Writes dir/tokenizer.json and dir/tokenizer_config.json (atomically; dir must exist). */
qv_status qv_demo_write_tokenizer(const qv_demo_tok *tk, const char *dir, qv_err *err);
/* Writes dir/config.json, dir/generation_config.json and dir/preprocessor_config.json for the demo
 * model (small dims; vocab_size and the special ids from tk). */
qv_status qv_demo_write_configs(const qv_demo_tok *tk, const char *dir, qv_err *err);

/* Writes a synthetic test clip as YUV4MPEG2 (readable by libavformat; no encoder needed): a moving
 * bright square and a colour sweep over a gradient, w x h (even), fps frames per second, seconds long.
 * Used when the ffmpeg command line is missing. */
qv_status qv_demo_write_y4m(const char *path, int w, int h, int fps, double seconds, qv_err *err);

#endif
