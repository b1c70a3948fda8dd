/* prompt.h — prompt text <-> token ids with vision blocks: parsing the raw prompt form, expanding vision
 * placeholders, and building prompts (Qwen2-VL chat template, base-model form). Pure functions: no model,
 * no media; the engine (pipeline/engine.c) calls them.
 *
 *   // raw form: the whole prompt verbatim, special tokens included, {{video:PATH}} / {{image:PATH}} where
 *   // a vision block goes. Each marker stands for the WHOLE block
 *   //   <|vision_start|><|video_pad|> x N <|vision_end|>      (N = t*gh*gw/4 of that input)
 *   qv_prompt_seg *segs; int n;
 *   qv_prompt_parse("{{image:a.png}}A picture of", &segs, &n, &err);   // -> [image "a.png"] [text "A picture of"]
 *   ... encode the media, get the token count of each vision segment ...
 *   qv_prompt_tokenize(tok, segs, n, &vids, counts, &ids, &n_ids, NULL, &err);
 *   qv_prompt_segs_free(segs, n);
 *
 * Reference: spec section 7 and the chat template of tokenizer_config.json (rendered examples in
 * fixtures/golden/chat_template.json). Text segments are tokenized one by one; as the vision block is
 * made of special tokens, which the tokenizer matches before any splitting, this equals tokenizing the
 * expanded prompt in one piece. */
#ifndef QV_PROMPT_H
#define QV_PROMPT_H

#include <stddef.h>
#include <stdint.h>
#include "core.h"
#include "tokenizer.h"

typedef enum { QV_SEG_TEXT = 0, QV_SEG_IMAGE = 1, QV_SEG_VIDEO = 2 } qv_seg_kind;

typedef struct {
    qv_seg_kind kind;
    char *text;           /* TEXT: the bytes (NUL-terminated copy); IMAGE/VIDEO: the path as written */
    size_t len;           /* strlen(text) */
} qv_prompt_seg;

/* Splits a raw prompt into segments (owned by the caller: qv_prompt_segs_free). An unterminated marker, an
 * empty path, or an unknown {{kind:...}} marker is QV_ERR_INVALID naming the offset. Empty text between
 * markers makes no segment. */
qv_status qv_prompt_parse(const char *raw, qv_prompt_seg **segs, int *n_segs, qv_err *err);
void qv_prompt_segs_free(qv_prompt_seg *segs, int n_segs);   /* NULL-safe */

/* The special ids a vision block is made of (read from the config; checked against the tokenizer). */
typedef struct {
    int32_t vision_start, vision_end, image_pad, video_pad;
} qv_vision_ids;

/* Tokenizes the segments into one id array (malloc'd, *ids): text segments through the tokenizer with
 * special tokens recognised, vision segment i as vision_start, pad x n_vision_tokens[i], vision_end, where i
 * counts vision segments only (in prompt order). pad_offsets (may be NULL) receives, per vision segment, the
 * index in *ids of its first pad token. */
qv_status qv_prompt_tokenize(const qv_tokenizer *tok, const qv_prompt_seg *segs, int n_segs,
                             const qv_vision_ids *vids, const int64_t *n_vision_tokens, int32_t **ids,
                             int64_t *n_ids, int64_t *pad_offsets, qv_err *err);

/* ---- building prompts ---------------------------------------------------------------------------------- */

/* One part of a chat message's content list: type "text" (text = the words), "image" or "video" (text = the
 * path, written as {{image:PATH}} / {{video:PATH}} when markers is set, else as the bare block
 * <|vision_start|><|image_pad|><|vision_end|> like transformers' apply_chat_template). */
typedef struct {
    const char *type;
    const char *text;
} qv_chat_part;

/* A message: content is a plain string (content != NULL) or a list of parts. */
typedef struct {
    const char *role;        /* "system", "user", "assistant" */
    const char *content;     /* or NULL when parts are used */
    const qv_chat_part *parts;
    int n_parts;
} qv_chat_msg;

/* Renders messages as the Qwen2-VL chat template does: a default system message "You are a helpful
 * assistant." when the first message is not a system one, <|im_start|>ROLE\n ... <|im_end|>\n per message,
 * "Picture N: " / "Video N: " before vision blocks when add_vision_id, and "<|im_start|>assistant\n" when
 * add_generation_prompt. *out malloc'd. */
qv_status qv_prompt_render_chat(const qv_chat_msg *msgs, int n_msgs, int add_generation_prompt,
                                int add_vision_id, int markers, char **out, qv_err *err);

/* One input of a friendly prompt. */
typedef struct {
    const char *path;
    int is_video;            /* 1 video, 0 image */
} qv_prompt_media;

#define QV_DEFAULT_SYSTEM "You are a helpful assistant."
#define QV_DEFAULT_FRAMING "Question: {question} Answer:"

/* The raw prompt (with {{..:PATH}} markers) for media + question.
 *   chat = 1: the chat template: system message (system, or the default when NULL), one user message whose
 *             content is the vision blocks in the given order followed by the question, generation prompt.
 *   chat = 0: base-model form: the vision blocks, then the question put into framing.
 * framing: text where "{question}" is replaced by the question (first occurrence); NULL = the question
 * alone in chat form, QV_DEFAULT_FRAMING in base form; a framing without "{question}" gets the question
 * appended after one space. The question must be non-empty; a question or path that contains a marker
 * ("{{image:", "{{video:") or a path with "}}" is refused (it could not be parsed back). */
qv_status qv_prompt_build(int chat, const char *system, const qv_prompt_media *media, int n_media,
                          const char *question, const char *framing, char **out, qv_err *err);

/* 1 when a tokenizer_config.json text carries a chat template with roles (<|im_start|>), else 0. */
int qv_prompt_template_is_chat(const char *tokenizer_config_json, size_t len);

#endif
