/* prompt.c — raw prompt parsing, vision-block expansion, chat and base prompt building (see prompt.h).
 * Reference: spec section 7; the chat template of the Qwen2-VL tokenizer_config.json. */
#include "prompt.h"
#include "buf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growable string (the core's qv_buf) ------------------------------------------------------- */

typedef qv_buf sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) { qv_buf_put(b, s, n); }
static void sb_puts(sbuf *b, const char *s) { qv_buf_puts(b, s); }

static qv_status sb_finish(sbuf *b, char **out, qv_err *err) {
    *out = qv_buf_finish(b);
    return *out ? QV_OK : qv_errf(err, QV_ERR_NOMEM, "out of memory building the prompt");
}

/* ---- parsing ------------------------------------------------------------------------------------- */

static const char *find_marker(const char *s, qv_seg_kind *kind) {
    for (const char *p = strstr(s, "{{"); p; p = strstr(p + 1, "{{")) {
        if (strncmp(p, "{{image:", 8) == 0) {
            *kind = QV_SEG_IMAGE;
            return p;
        }
        if (strncmp(p, "{{video:", 8) == 0) {
            *kind = QV_SEG_VIDEO;
            return p;
        }
    }
    return NULL;
}

static int push_seg(qv_prompt_seg **segs, int *n, int *cap, qv_seg_kind kind, const char *s, size_t len) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        qv_prompt_seg *q = realloc(*segs, (size_t)nc * sizeof *q);
        if (!q) return 0;
        *segs = q;
        *cap = nc;
    }
    char *t = malloc(len + 1);
    if (!t) return 0;
    memcpy(t, s, len);
    t[len] = 0;
    (*segs)[*n] = (qv_prompt_seg){kind, t, len};
    (*n)++;
    return 1;
}

qv_status qv_prompt_parse(const char *raw, qv_prompt_seg **segs_out, int *n_out, qv_err *err) {
    *segs_out = NULL;
    *n_out = 0;
    if (!raw) return qv_errf(err, QV_ERR_INVALID, "no prompt given");
    qv_prompt_seg *segs = NULL;
    int n = 0, cap = 0;
    const char *p = raw;
    for (;;) {
        qv_seg_kind kind;
        const char *m = find_marker(p, &kind);
        const char *text_end = m ? m : p + strlen(p);
        if (text_end > p && !push_seg(&segs, &n, &cap, QV_SEG_TEXT, p, (size_t)(text_end - p))) goto oom;
        if (!m) break;
        const char *path = m + 8;
        const char *close = strstr(path, "}}");
        if (!close) {
            qv_prompt_segs_free(segs, n);
            return qv_errf(err, QV_ERR_INVALID, "prompt: '%.8s' at byte %ld has no closing '}}'", m,
                           (long)(m - raw));
        }
        if (close == path) {
            qv_prompt_segs_free(segs, n);
            return qv_errf(err, QV_ERR_INVALID, "prompt: empty path in '%.10s' at byte %ld", m, (long)(m - raw));
        }
        if (!push_seg(&segs, &n, &cap, kind, path, (size_t)(close - path))) goto oom;
        p = close + 2;
    }
    *segs_out = segs;
    *n_out = n;
    return QV_OK;
oom:
    qv_prompt_segs_free(segs, n);
    return qv_errf(err, QV_ERR_NOMEM, "out of memory parsing the prompt");
}

void qv_prompt_segs_free(qv_prompt_seg *segs, int n) {
    if (!segs) return;
    for (int i = 0; i < n; i++) free(segs[i].text);
    free(segs);
}

/* ---- tokenizing with vision blocks expanded ------------------------------------------------------------ */

qv_status qv_prompt_tokenize(const qv_tokenizer *tok, const qv_prompt_seg *segs, int n_segs,
                             const qv_vision_ids *vids, const int64_t *n_vision_tokens, int32_t **ids_out,
                             int64_t *n_ids_out, int64_t *pad_offsets, qv_err *err) {
    *ids_out = NULL;
    *n_ids_out = 0;
    int32_t *ids = NULL;
    uint64_t n = 0, cap = 0;
    int vi = 0;
    qv_status st = QV_OK;
    for (int s = 0; s < n_segs; s++) {
        int32_t *part = NULL;
        size_t n_part = 0;
        uint64_t add;
        if (segs[s].kind == QV_SEG_TEXT) {
            st = qv_tok_encode(tok, segs[s].text, segs[s].len, &part, &n_part, err);
            if (st) goto fail;
            add = n_part;
        } else {
            int64_t k = n_vision_tokens[vi];
            if (k <= 0) {
                st = qv_errf(err, QV_ERR_INVALID, "prompt: %s '%s' has no vision tokens",
                             segs[s].kind == QV_SEG_VIDEO ? "video" : "image", segs[s].text);
                goto fail;
            }
            add = (uint64_t)k + 2;
        }
        uint64_t need;
        if (!qv_add_ok(n, add, &need) || need > (uint64_t)1 << 31) {
            free(part);
            st = qv_errf(err, QV_ERR_NOMEM, "prompt: more than 2^31 tokens");
            goto fail;
        }
        if (need > cap) {
            uint64_t nc = cap ? cap : 1024;
            while (nc < need) nc *= 2;
            int32_t *q = realloc(ids, nc * sizeof *q);
            if (!q) {
                free(part);
                st = qv_errf(err, QV_ERR_NOMEM, "out of memory for %llu prompt ids", (unsigned long long)need);
                goto fail;
            }
            ids = q;
            cap = nc;
        }
        if (segs[s].kind == QV_SEG_TEXT) {
            if (n_part) memcpy(ids + n, part, n_part * sizeof *part);
            free(part);
            n += n_part;
        } else {
            int32_t pad = segs[s].kind == QV_SEG_VIDEO ? vids->video_pad : vids->image_pad;
            ids[n++] = vids->vision_start;
            if (pad_offsets) pad_offsets[vi] = (int64_t)n;
            for (int64_t k = 0; k < n_vision_tokens[vi]; k++) ids[n++] = pad;
            ids[n++] = vids->vision_end;
            vi++;
        }
    }
    *ids_out = ids;
    *n_ids_out = (int64_t)n;
    return QV_OK;
fail:
    free(ids);
    return st;
}

/* ---- chat template -------------------------------------------------------------------------------------- */

static void render_vision(sbuf *b, int is_video, const char *path, int markers) {
    if (markers) {
        sb_puts(b, is_video ? "{{video:" : "{{image:");
        sb_puts(b, path);
        sb_puts(b, "}}");
    } else {
        sb_puts(b, is_video ? "<|vision_start|><|video_pad|><|vision_end|>" : "<|vision_start|><|image_pad|><|vision_end|>");
    }
}

qv_status qv_prompt_render_chat(const qv_chat_msg *msgs, int n_msgs, int add_generation_prompt,
                                int add_vision_id, int markers, char **out, qv_err *err) {
    sbuf b = {0};
    int n_img = 0, n_vid = 0;
    for (int i = 0; i < n_msgs; i++) {
        const qv_chat_msg *m = &msgs[i];
        if (!m->role) {
            free(b.p);
            return qv_errf(err, QV_ERR_INVALID, "chat message %d has no role", i);
        }
        if (i == 0 && strcmp(m->role, "system") != 0) sb_puts(&b, "<|im_start|>system\n" QV_DEFAULT_SYSTEM "<|im_end|>\n");
        sb_puts(&b, "<|im_start|>");
        sb_puts(&b, m->role);
        sb_puts(&b, "\n");
        if (m->content) {
            sb_puts(&b, m->content);
            sb_puts(&b, "<|im_end|>\n");
            continue;
        }
        for (int k = 0; k < m->n_parts; k++) {
            const qv_chat_part *p = &m->parts[k];
            const char *text = p->text ? p->text : "";
            char num[32];
            if (strcmp(p->type, "image") == 0) {
                n_img++;
                if (add_vision_id) {
                    snprintf(num, sizeof num, "Picture %d: ", n_img);
                    sb_puts(&b, num);
                }
                render_vision(&b, 0, text, markers);
            } else if (strcmp(p->type, "video") == 0) {
                n_vid++;
                if (add_vision_id) {
                    snprintf(num, sizeof num, "Video %d: ", n_vid);
                    sb_puts(&b, num);
                }
                render_vision(&b, 1, text, markers);
            } else if (strcmp(p->type, "text") == 0) {
                sb_puts(&b, text);
            } else {
                free(b.p);
                return qv_errf(err, QV_ERR_INVALID, "chat message %d: unknown content type '%s'", i, p->type);
            }
        }
        sb_puts(&b, "<|im_end|>\n");
    }
    if (add_generation_prompt) sb_puts(&b, "<|im_start|>assistant\n");
    return sb_finish(&b, out, err);
}

/* ---- friendly prompts ---------------------------------------------------------------------------------- */

static int has_marker(const char *s) { return strstr(s, "{{image:") || strstr(s, "{{video:"); }

/* The built prompt must hold exactly the vision markers of the inputs, in order: user text (question,
 * framing, system message) that forms "{{image:PATH}}" only once joined (framing "{{ima{question}" +
 * question "ge:/etc/passwd}}") would otherwise read a file into the prompt. Checked on the result, so
 * it holds for every way texts meet. */
static qv_status check_markers(char **out, const qv_prompt_media *media, int n_media, qv_err *err) {
    qv_prompt_seg *segs;
    int n, k = 0, bad = 0;
    qv_status st = qv_prompt_parse(*out, &segs, &n, err);
    if (st == QV_ERR_NOMEM) {
        free(*out);
        *out = NULL;
        return st;
    }
    if (st) bad = 1; /* an unterminated marker the user text started */
    for (int i = 0; !bad && i < n; i++) {
        if (segs[i].kind == QV_SEG_TEXT) continue;
        if (k >= n_media || (segs[i].kind == QV_SEG_VIDEO) != (media[k].is_video != 0) || strcmp(segs[i].text, media[k].path))
            bad = 1;
        k++;
    }
    if (!st) qv_prompt_segs_free(segs, n);
    if (bad || k != n_media) {
        free(*out);
        *out = NULL;
        return qv_errf(err, QV_ERR_INVALID,
                       "the question, framing or system text would form an '{{image:' or '{{video:' marker once joined (use --raw for that)");
    }
    return QV_OK;
}

static qv_status build_unchecked(int chat, const char *system, const qv_prompt_media *media, int n_media,
                                 const char *question, const char *framing, char **out, qv_err *err);

qv_status qv_prompt_build(int chat, const char *system, const qv_prompt_media *media, int n_media,
                          const char *question, const char *framing, char **out, qv_err *err) {
    qv_status st = build_unchecked(chat, system, media, n_media, question, framing, out, err);
    if (st) return st;
    return check_markers(out, media, n_media, err);
}

static qv_status build_unchecked(int chat, const char *system, const qv_prompt_media *media, int n_media,
                                 const char *question, const char *framing, char **out, qv_err *err) {
    *out = NULL;
    if (!question || !*question) return qv_errf(err, QV_ERR_INVALID, "the question is empty");
    if (has_marker(question))
        return qv_errf(err, QV_ERR_INVALID, "the question contains '{{image:' or '{{video:' (use --raw for that)");
    if (framing && has_marker(framing))
        return qv_errf(err, QV_ERR_INVALID, "the framing contains '{{image:' or '{{video:'");
    for (int i = 0; i < n_media; i++) {
        const char *p = media[i].path;
        if (!p || !*p) return qv_errf(err, QV_ERR_INVALID, "input %d has an empty path", i + 1);
        if (strstr(p, "}}") || has_marker(p))
            return qv_errf(err, QV_ERR_INVALID, "the path '%s' contains '}}', which a prompt cannot hold", p);
    }
    if (!framing && !chat) framing = QV_DEFAULT_FRAMING;

    /* the question inside its framing */
    sbuf q = {0};
    if (framing) {
        const char *at = strstr(framing, "{question}");
        if (at) {
            sb_add(&q, framing, (size_t)(at - framing));
            sb_puts(&q, question);
            sb_puts(&q, at + strlen("{question}"));
        } else {
            sb_puts(&q, framing);
            if (*framing) sb_puts(&q, " ");
            sb_puts(&q, question);
        }
    } else {
        sb_puts(&q, question);
    }
    char *qtext;
    qv_status st = sb_finish(&q, &qtext, err);
    if (st) return st;

    if (chat) {
        qv_chat_part *parts = calloc((size_t)n_media + 1, sizeof *parts);
        if (!parts) {
            free(qtext);
            return qv_errf(err, QV_ERR_NOMEM, "out of memory building the prompt");
        }
        for (int i = 0; i < n_media; i++) parts[i] = (qv_chat_part){media[i].is_video ? "video" : "image", media[i].path};
        parts[n_media] = (qv_chat_part){"text", qtext};
        qv_chat_msg msgs[2];
        int n = 0;
        if (system) msgs[n++] = (qv_chat_msg){"system", system, NULL, 0};
        msgs[n++] = (qv_chat_msg){"user", NULL, parts, n_media + 1};
        st = qv_prompt_render_chat(msgs, n, 1, 0, 1, out, err);
        free(parts);
        free(qtext);
        return st;
    }
    sbuf b = {0};
    for (int i = 0; i < n_media; i++) render_vision(&b, media[i].is_video, media[i].path, 1);
    sb_puts(&b, qtext);
    free(qtext);
    return sb_finish(&b, out, err);
}

int qv_prompt_template_is_chat(const char *json, size_t len) {
    if (!json) return 0;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return 0;
    int chat = 0;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsString(t)) {
        chat = strstr(t->valuestring, "<|im_start|>") != NULL;
    } else if (cJSON_IsArray(t)) { /* newer form: [{"name": ..., "template": ...}] */
        const cJSON *it;
        cJSON_ArrayForEach(it, t) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (cJSON_IsString(s) && strstr(s->valuestring, "<|im_start|>")) chat = 1;
        }
    }
    cJSON_Delete(root);
    return chat;
}
