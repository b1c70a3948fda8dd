/* tokenizer.h — the Qwen2 byte-level BPE tokenizer (text <-> ids), identical to Hugging Face `tokenizers`.
 *
 *   qv_tokenizer *tok; qv_err err = {0};
 *   if (qv_tok_load(&tok, "models/qwen2-vl-7b", &err) != QV_OK) ...;          // folder or tokenizer.json
 *   int32_t *ids; size_t n;
 *   qv_tok_encode(tok, text, strlen(text), &ids, &n, &err);                     // specials recognised
 *   size_t need = qv_tok_decode(tok, ids, n, 0, buf, sizeof buf);              // U+FFFD for bad UTF-8
 *   free(ids); qv_tok_free(tok);
 *
 * Pipeline (as HF): added/special tokens are matched in the raw text first; every stretch between them is
 * NFC-normalized, split by the Qwen2 pre-tokenizer pattern, mapped to byte-level symbols and merged by
 * BPE merge rank. A loaded tokenizer is read-only: one may be shared by threads (encode uses a per-call
 * scratch; the word cache is internally locked).
 * Text that is not valid UTF-8 (HF cannot be given it) is still encoded: each invalid byte stands alone,
 * is not normalized, and goes through its byte token (decode turns it into U+FFFD).
 * Only the Qwen2 pipeline is accepted (NFC, the Qwen2 Split pattern, ByteLevel, BPE without dropout or
 * prefixes); other tokenizer.json types, and added tokens with lstrip/rstrip/single_word, fail to load. */
#ifndef QV_TOKENIZER_H
#define QV_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "core.h"

typedef struct qv_tokenizer qv_tokenizer;

/* path: a model folder (tokenizer.json, else vocab.json + merges.txt + tokenizer_config.json) or a
 * tokenizer.json file. */
qv_status qv_tok_load(qv_tokenizer **out, const char *path, qv_err *err);
void qv_tok_free(qv_tokenizer *t);                      /* NULL-safe */
int qv_tok_vocab_size(const qv_tokenizer *t);           /* largest id + 1 */

/* Encode raw text (added/special tokens recognised). *ids malloc'd, caller frees. text may hold NUL. */
qv_status qv_tok_encode(const qv_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                        qv_err *err);
/* Exact token string -> id, -1 if none (e.g. "<|video_pad|>", "Ġworld"). */
int qv_tok_id(const qv_tokenizer *t, const char *token, size_t len);
/* Token string (byte-level form, e.g. "Ġworld"; added tokens as written), NULL if none. */
const char *qv_tok_str(const qv_tokenizer *t, int32_t id, size_t *len);
int qv_tok_is_special(const qv_tokenizer *t, int32_t id);  /* 1 for special added tokens, else 0 */

/* Decode ids to UTF-8 text (invalid sequences -> U+FFFD, unknown ids skipped). Writes up to cap bytes
 * (cap-1 bytes of text + NUL when cap > 0) and returns the full length needed (without the NUL). */
size_t qv_tok_decode(const qv_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char *out,
                     size_t cap);

/* Streaming decode for generation: push one id at a time, get back only complete UTF-8 text. */
typedef struct qv_tok_stream qv_tok_stream;
qv_tok_stream *qv_tok_stream_create(const qv_tokenizer *t, int skip_special);  /* NULL on OOM */
/* Returns bytes written to out (NUL-terminated), holding back an incomplete UTF-8 tail. Output is cut only
 * between characters; text that does not fit in cap - 1 bytes is kept (cap >= 5 always makes progress):
 * a token can be longer than any buffer (a tokenizer.json may hold a 1 MB token), so after each push and
 * flush call qv_tok_stream_take until it returns 0. */
size_t qv_tok_stream_push(qv_tok_stream *s, int32_t id, char *out, size_t cap);
/* Hands out more of the text kept back by push or flush (0: none left). */
size_t qv_tok_stream_take(qv_tok_stream *s, char *out, size_t cap);
/* Emits the rest (U+FFFD for a broken tail); with a small cap, call until it returns 0. */
size_t qv_tok_stream_flush(qv_tok_stream *s, char *out, size_t cap);
void qv_tok_stream_free(qv_tok_stream *s);             /* NULL-safe */

#endif
