/* server_req.c — an OpenAI chat-completions request -> engine prompt and options (server_req.h).
 * Everything a client sends is checked here, before the engine sees it: types, ranges, roles, media
 * URLs, the media-root confinement and the prompt markers. */
#include "server_req.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "prompt.h"
#include "sampler.h"

int srv_fail(srv_error *e, int http, const char *type, const char *code, const char *param, const char *fmt, ...) {
    e->http = http;
    e->type = type;
    e->code = code;
    e->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

#define BAD(e, param, ...) srv_fail(e, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

char *srv_error_json(const srv_error *e) {
    cJSON *o = cJSON_CreateObject(), *x = cJSON_AddObjectToObject(o, "error");
    if (!x) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddStringToObject(x, "message", e->msg);
    cJSON_AddStringToObject(x, "type", e->type ? e->type : "invalid_request_error");
    if (e->param) cJSON_AddStringToObject(x, "param", e->param);
    else cJSON_AddNullToObject(x, "param");
    if (e->code) cJSON_AddStringToObject(x, "code", e->code);
    else cJSON_AddNullToObject(x, "code");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

long srv_base64_decode(const char *in, size_t len, unsigned char *out) {
    while (len > 0 && in[len - 1] == '=') len--;
    if (len % 4 == 1) return -1;
    long n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
              : c == '+' ? 62 : c == '/' ? 63 : -1;
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

int srv_const_eq(const char *a, size_t alen, const char *b, size_t blen) {
    /* time depends on blen (the server's key) only; a's bytes are read cyclically */
    unsigned char d = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) d |= (unsigned char)(b[i] ^ (alen ? a[i % alen] : 0));
    return d == 0;
}

/* ---- media URLs ------------------------------------------------------------------------------------ */

static const char *ext_for(const char *mime, size_t n, int is_video) {
    static const struct { const char *m, *ext; } k[] = {
        {"image/png", ".png"},   {"image/jpeg", ".jpg"},  {"image/jpg", ".jpg"},  {"image/webp", ".webp"},
        {"image/bmp", ".bmp"},   {"image/tiff", ".tif"},  {"image/gif", ".gif"},  {"video/mp4", ".mp4"},
        {"video/webm", ".webm"}, {"video/x-matroska", ".mkv"}, {"video/quicktime", ".mov"},
        {"video/x-msvideo", ".avi"}, {"video/mpeg", ".mpg"}};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++)
        if (strlen(k[i].m) == n && strncasecmp(mime, k[i].m, n) == 0) return k[i].ext;
    return is_video ? ".video" : ".image";
}

static int push_tmp(srv_req *r, char *path) {
    char **t = realloc(r->tmp_files, (size_t)(r->n_tmp + 1) * sizeof *t);
    if (!t) return -1;
    r->tmp_files = t;
    t[r->n_tmp++] = path;
    return 0;
}

/* data:[mime][;params];base64,DATA -> a new private file; *path_out owned by r->tmp_files */
static int data_url(srv_req *r, srv_cfg *cfg, const char *url, int is_video, int k, const char **path_out,
                    srv_error *e) {
    const char *comma = strchr(url, ',');
    if (!comma) return BAD(e, "messages", "media %d: a data: URL needs a ',' before its data", k);
    const char *hdr = url + 5;
    size_t hlen = (size_t)(comma - hdr);
    if (hlen < 7 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return BAD(e, "messages", "media %d: only base64 data: URLs are accepted (data:MIME;base64,...)", k);
    size_t mlen = strcspn(hdr, ";,");
    if (mlen > 0 && strncasecmp(hdr, is_video ? "video/" : "image/", 6) != 0 &&
        !(mlen == 24 && strncasecmp(hdr, "application/octet-stream", 24) == 0))
        return BAD(e, "messages", "media %d: a %s part holds a data: URL of type '%.*s'", k,
                   is_video ? "video_url" : "image_url", (int)(mlen > 64 ? 64 : mlen), hdr);
    const char *b64 = comma + 1;
    size_t blen = strlen(b64);
    if (blen == 0) return BAD(e, "messages", "media %d: the data: URL is empty", k);
    unsigned char *buf = malloc(blen / 4 * 3 + 3);
    if (!buf) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory decoding media %d", k);
    long n = srv_base64_decode(b64, blen, buf);
    if (n <= 0) {
        free(buf);
        return BAD(e, "messages", "media %d: the data: URL is not valid base64", k);
    }
    char name[64];
    snprintf(name, sizeof name, "r%llu-%d%s", (unsigned long long)cfg->req_no, k, ext_for(hdr, mlen, is_video));
    char *path = qv_path_join(cfg->tmp_dir, name);
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
    if (fd < 0) {
        int en = errno;
        free(buf);
        free(path);
        return srv_fail(e, 500, "server_error", NULL, NULL, "cannot create a temporary media file: %s", strerror(en));
    }
    if (push_tmp(r, path)) {
        close(fd);
        unlink(path);
        free(path);
        free(buf);
        return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = write(fd, buf + off, (size_t)n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(buf);
    if (close(fd) != 0 || off != (size_t)n)
        return srv_fail(e, 500, "server_error", NULL, NULL, "cannot write a temporary media file (disk full?)");
    *path_out = path;
    return 0;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* file:///PATH (or file://localhost/PATH) -> the real path, inside cfg->media_root, a regular file */
static int file_url(srv_cfg *cfg, const char *url, int k, const char **path_out, srv_error *e) {
    if (!cfg->media_root)
        return srv_fail(e, 400, "invalid_request_error", "file_url_not_allowed", "messages",
                        "media %d: file:// URLs are refused (the server has no --media-root)", k);
    const char *p = url + 7;
    if (strncasecmp(p, "localhost/", 10) == 0) p += 9;
    if (*p != '/') return BAD(e, "messages", "media %d: a file:// URL must hold an absolute path (file:///PATH)", k);
    size_t n = strlen(p);
    if (n >= PATH_MAX) return BAD(e, "messages", "media %d: the file:// path is too long", k);
    char dec[PATH_MAX];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            int h = i + 2 < n ? hexval(p[i + 1]) : -1, l = h >= 0 ? hexval(p[i + 2]) : -1;
            if (h < 0 || l < 0) return BAD(e, "messages", "media %d: bad %%-escape in the file:// URL", k);
            c = (char)(h * 16 + l);
            i += 2;
            if (c == 0) return BAD(e, "messages", "media %d: the file:// URL holds a NUL byte", k);
        } else if (c == '?' || c == '#') {
            return BAD(e, "messages", "media %d: a file:// URL cannot have a query or fragment", k);
        }
        dec[m++] = c;
    }
    dec[m] = 0;
    for (const char *s = dec; (s = strstr(s, "..")) != NULL; s += 2)
        if ((s == dec || s[-1] == '/') && (s[2] == 0 || s[2] == '/'))
            return srv_fail(e, 403, "invalid_request_error", "path_not_allowed", "messages",
                            "media %d: '..' is not allowed in file:// paths", k);
    char *real = realpath(dec, NULL);
    if (!real) return BAD(e, "messages", "media %d: %s: %s", k, dec, strerror(errno));
    size_t rl = strlen(cfg->media_root);
    int inside = strncmp(real, cfg->media_root, rl) == 0 && (real[rl] == '/' || (rl == 1 && cfg->media_root[0] == '/'));
    struct stat sb;
    if (!inside) {
        free(real);
        return srv_fail(e, 403, "invalid_request_error", "path_not_allowed", "messages",
                        "media %d: %s is outside the server's --media-root", k, dec);
    }
    if (stat(real, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        free(real);
        return BAD(e, "messages", "media %d: %s is not a regular file", k, dec);
    }
    if (strstr(real, "}}") || strstr(real, "{{")) {
        free(real);
        return BAD(e, "messages", "media %d: the path holds '{{' or '}}', which a prompt cannot hold", k);
    }
    *path_out = real;
    return 1; /* 1: *path_out is malloc'd and not a temp file */
}

/* ---- messages -> prompt ---------------------------------------------------------------------------- */

typedef struct {
    char *path;              /* owned when own */
    int own, is_video;
} media_ref;

typedef struct {
    media_ref *m;
    int n, cap;
} media_list;

static int media_add(media_list *l, char *path, int own, int is_video) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 8;
        media_ref *q = realloc(l->m, (size_t)nc * sizeof *q);
        if (!q) return -1;
        l->m = q;
        l->cap = nc;
    }
    l->m[l->n++] = (media_ref){path, own, is_video};
    return 0;
}

static void media_list_free(media_list *l) {
    for (int i = 0; i < l->n; i++)
        if (l->m[i].own) free(l->m[i].path);
    free(l->m);
}

/* growable string */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static int has_marker(const char *s) { return strstr(s, "{{image:") || strstr(s, "{{video:"); }

static const char *role_of(const char *r) {
    if (!strcmp(r, "system") || !strcmp(r, "developer")) return "system";
    if (!strcmp(r, "user")) return "user";
    if (!strcmp(r, "assistant")) return "assistant";
    return NULL;
}

/* one message's parts: text parts and media (resolved to paths); parts[] receives chat parts */
static int parse_content(srv_req *r, srv_cfg *cfg, const cJSON *content, int mi, const char *role,
                         qv_chat_part *parts, int *n_parts, int max_parts, media_list *ml, sbuf *text, srv_error *e) {
    *n_parts = 0;
    const cJSON *it;
    int pi = 0;
    cJSON_ArrayForEach(it, content) {
        if (!cJSON_IsObject(it)) return BAD(e, "messages", "messages[%d].content[%d] must be an object", mi, pi);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
        if (!cJSON_IsString(type)) return BAD(e, "messages", "messages[%d].content[%d] has no string 'type'", mi, pi);
        const char *t = type->valuestring;
        if (*n_parts >= max_parts) return BAD(e, "messages", "messages[%d] has too many content parts", mi);
        if (!strcmp(t, "text")) {
            const cJSON *tx = cJSON_GetObjectItemCaseSensitive(it, "text");
            if (!cJSON_IsString(tx)) return BAD(e, "messages", "messages[%d].content[%d].text must be a string", mi, pi);
            if (has_marker(tx->valuestring))
                return BAD(e, "messages", "messages[%d] text holds '{{image:' or '{{video:', which qv reserves", mi);
            parts[(*n_parts)++] = (qv_chat_part){"text", tx->valuestring};
            sb_puts(text, tx->valuestring);
        } else if (!strcmp(t, "image_url") || !strcmp(t, "video_url")) {
            int is_video = t[0] == 'v';
            if (strcmp(role, "user") != 0)
                return BAD(e, "messages", "messages[%d]: only user messages may hold images or videos", mi);
            int k = r->n_images + r->n_videos;
            if (k >= cfg->max_media)
                return BAD(e, "messages", "too many images and videos (at most %d per request)", cfg->max_media);
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(it, t);
            if (cJSON_IsObject(u)) u = cJSON_GetObjectItemCaseSensitive(u, "url");
            if (!cJSON_IsString(u))
                return BAD(e, "messages", "messages[%d].content[%d].%s must hold a string 'url'", mi, pi, t);
            const char *url = u->valuestring, *path = NULL;
            int rc;
            if (strncasecmp(url, "data:", 5) == 0) rc = data_url(r, cfg, url, is_video, k, &path, e);
            else if (strncasecmp(url, "file://", 7) == 0) rc = file_url(cfg, url, k, &path, e);
            else if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0)
                return srv_fail(e, 400, "invalid_request_error", "url_not_supported", "messages",
                                "media %d: http(s) URLs are not fetched; send the media as a data: URL (base64) "
                                "or as file:// under the server's --media-root",
                                k);
            else
                return BAD(e, "messages", "media %d: the url must be a data: or file:// URL", k);
            if (rc < 0) return -1;
            if (media_add(ml, (char *)path, rc == 1, is_video)) {
                if (rc == 1) free((char *)path);
                return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
            }
            if (is_video) r->n_videos++;
            else r->n_images++;
            parts[(*n_parts)++] = (qv_chat_part){is_video ? "video" : "image", path};
        } else {
            return BAD(e, "messages", "messages[%d].content[%d]: unknown part type '%.40s' (text, image_url, video_url)",
                       mi, pi, t);
        }
        pi++;
    }
    return 0;
}

/* The rendered prompt must hold exactly the request's media, in order, and nothing else as markers. */
static int check_markers(const char *prompt, const media_list *ml, srv_error *e) {
    qv_prompt_seg *segs;
    int n;
    qv_err err = {0};
    if (qv_prompt_parse(prompt, &segs, &n, &err)) return BAD(e, "messages", "the text cannot be used: %s", err.msg);
    int k = 0, ok = 1;
    for (int i = 0; i < n && ok; i++) {
        if (segs[i].kind == QV_SEG_TEXT) continue;
        ok = k < ml->n && (segs[i].kind == QV_SEG_VIDEO) == ml->m[k].is_video && strcmp(segs[i].text, ml->m[k].path) == 0;
        k++;
    }
    qv_prompt_segs_free(segs, n);
    if (!ok || k != ml->n) return BAD(e, "messages", "the message text would change the vision inputs ('{{' ... '}}')");
    return 0;
}

static int build_prompt(srv_req *r, srv_cfg *cfg, const cJSON *msgs, srv_error *e) {
    int n_msgs = cJSON_GetArraySize(msgs);
    if (!cJSON_IsArray(msgs) || n_msgs < 1) return BAD(e, "messages", "'messages' must be a non-empty array");
    if (n_msgs > cfg->max_messages) return BAD(e, "messages", "too many messages (at most %d)", cfg->max_messages);
    const int max_parts = 256;
    qv_chat_msg *cm = calloc((size_t)n_msgs, sizeof *cm);
    qv_chat_part *parts = calloc((size_t)n_msgs * max_parts, sizeof *parts);
    sbuf *texts = calloc((size_t)n_msgs, sizeof *texts);
    media_list ml = {0};
    int rc = -1, n_user = 0;
    if (!cm || !parts || !texts) {
        srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        goto out;
    }
    const cJSON *m;
    int mi = 0;
    cJSON_ArrayForEach(m, msgs) {
        if (!cJSON_IsObject(m)) {
            BAD(e, "messages", "messages[%d] must be an object", mi);
            goto out;
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        const char *rl = cJSON_IsString(role) ? role_of(role->valuestring) : NULL;
        if (!rl) {
            if (cJSON_IsString(role)) BAD(e, "messages", "messages[%d]: unknown role '%.40s' (system, user, assistant)", mi, role->valuestring);
            else BAD(e, "messages", "messages[%d] needs a string 'role'", mi);
            goto out;
        }
        n_user += !strcmp(rl, "user");
        cm[mi].role = rl;
        if (cJSON_IsString(content)) {
            if (has_marker(content->valuestring)) {
                BAD(e, "messages", "messages[%d] text holds '{{image:' or '{{video:', which qv reserves", mi);
                goto out;
            }
            cm[mi].content = content->valuestring;
            sb_puts(&texts[mi], content->valuestring);
        } else if (cJSON_IsArray(content)) {
            if (parse_content(r, cfg, content, mi, rl, parts + (size_t)mi * max_parts, &cm[mi].n_parts, max_parts, &ml,
                              &texts[mi], e))
                goto out;
            cm[mi].parts = parts + (size_t)mi * max_parts;
            if (cm[mi].n_parts == 0) cm[mi].content = "";
        } else if ((cJSON_IsNull(content) || !content) && !strcmp(rl, "assistant")) {
            cm[mi].content = "";
        } else {
            BAD(e, "messages", "messages[%d].content must be a string or an array of parts", mi);
            goto out;
        }
        if (texts[mi].oom) {
            srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
            goto out;
        }
        mi++;
    }
    if (!n_user) {
        BAD(e, "messages", "the messages hold no user message");
        goto out;
    }
    if (cfg->chat) {
        qv_err err = {0};
        if (qv_prompt_render_chat(cm, n_msgs, 1, 0, 1, &r->prompt, &err)) {
            srv_fail(e, err.code == QV_ERR_NOMEM ? 500 : 400, "invalid_request_error", NULL, "messages", "%s", err.msg);
            goto out;
        }
    } else {
        /* base form, as `qv ask --base`: a user turn is its vision blocks then "Question: TEXT Answer:";
         * an assistant turn follows as " TEXT\n", a system message leads as "TEXT\n" */
        sbuf b = {0};
        for (int i = 0, k = 0; i < n_msgs; i++) {
            if (!strcmp(cm[i].role, "system")) {
                sb_puts(&b, texts[i].p ? texts[i].p : "");
                sb_puts(&b, "\n");
            } else if (!strcmp(cm[i].role, "assistant")) {
                sb_puts(&b, " ");
                sb_puts(&b, texts[i].p ? texts[i].p : "");
                sb_puts(&b, "\n");
            } else {
                for (int j = 0; j < cm[i].n_parts; j++) {
                    if (!strcmp(cm[i].parts[j].type, "text")) continue;
                    sb_puts(&b, ml.m[k].is_video ? "{{video:" : "{{image:");
                    sb_puts(&b, ml.m[k].path);
                    sb_puts(&b, "}}");
                    k++;
                }
                const char *at = strstr(QV_DEFAULT_FRAMING, "{question}");
                sb_add(&b, QV_DEFAULT_FRAMING, (size_t)(at - QV_DEFAULT_FRAMING));
                sb_puts(&b, texts[i].p ? texts[i].p : "");
                sb_puts(&b, at + strlen("{question}"));
            }
        }
        if (b.oom || !b.p) {
            free(b.p);
            srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
            goto out;
        }
        r->prompt = b.p;
    }
    rc = check_markers(r->prompt, &ml, e);
out:
    media_list_free(&ml); /* the prompt holds the paths now */
    for (int i = 0; texts && i < n_msgs; i++) free(texts[i].p);
    free(texts);
    free(parts);
    free(cm);
    return rc;
}

/* ---- numbers --------------------------------------------------------------------------------------- */

/* 0 absent (or null), 1 present (*out set), -1 error */
static int get_num(const cJSON *o, const char *name, double lo, double hi, int integer, double *out, srv_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return BAD(e, name, "'%s' must be a number", name);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi) return BAD(e, name, "'%s' must be in [%g, %g], not %g", name, lo, hi, d);
    if (integer && d != floor(d)) return BAD(e, name, "'%s' must be a whole number, not %g", name, d);
    *out = d;
    return 1;
}

static int get_bool(const cJSON *o, const char *name, int *out, srv_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return BAD(e, name, "'%s' must be true or false", name);
    *out = cJSON_IsTrue(v);
    return 1;
}

static int parse_media_opts(srv_req *r, const cJSON *o, srv_error *e) {
    double d;
    int p;
    if ((p = get_num(o, "fps", 1e-3, 1000, 0, &d, e)) < 0) return -1;
    if (p) r->mo.fps = d;
    /* bounds: the reference's own maxima (a request cannot make the engine allocate beyond what the
     * defaults of the biggest inputs already need) */
    if ((p = get_num(o, "max_frames", 2, QV_FPS_MAX_FRAMES, 1, &d, e)) < 0) return -1;
    if (p) {
        r->mo.max_frames = (int)d;
        if (r->mo.min_frames > r->mo.max_frames) r->mo.min_frames = r->mo.max_frames;
    }
    if ((p = get_num(o, "min_pixels", 784, (double)QV_IMAGE_MAX_PIXELS, 1, &d, e)) < 0) return -1;
    if (p) r->mo.min_pixels = (int64_t)d;
    if ((p = get_num(o, "max_pixels", 784, (double)QV_IMAGE_MAX_PIXELS, 1, &d, e)) < 0) return -1;
    if (p) r->mo.max_pixels = (int64_t)d;
    if ((p = get_num(o, "total_pixels", 784, 128000.0 * 28 * 28, 1, &d, e)) < 0) return -1;
    if (p) r->mo.total_pixels = (int64_t)d;
    if ((p = get_num(o, "start", 0, 1e9, 0, &d, e)) < 0) return -1;
    if (p) r->mo.start_s = d;
    if ((p = get_num(o, "end", 0, 1e9, 0, &d, e)) < 0) return -1;
    if (p) r->mo.end_s = d;
    return 0;
}

static int parse_params(srv_req *r, const cJSON *o, srv_cfg *cfg, srv_error *e) {
    double d;
    int p, b;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "model")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v)) return BAD(e, "model", "'model' must be a string");
        if (!(r->model = strdup(v->valuestring))) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    const char *mt = cJSON_GetObjectItemCaseSensitive(o, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if ((p = get_num(o, mt, 1, cfg->max_tokens_cap, 1, &d, e)) < 0) return -1;
    if (p) r->go.max_tokens = (int)d;
    if ((p = get_num(o, "n", 1, 1, 1, &d, e)) < 0) return -1;
    qv_sampler_params *s = &r->go.sampling;
    int sampling = 0, greedy = 0;
    if ((p = get_num(o, "temperature", 0, 2, 0, &d, e)) < 0) return -1;
    if (p) {
        if (d == 0) greedy = 1;
        else s->temperature = (float)d, sampling = 1;
    }
    if ((p = get_num(o, "top_p", 1e-6, 1, 0, &d, e)) < 0) return -1;
    if (p) s->top_p = (float)d, sampling |= d < 1;
    if ((p = get_num(o, "top_k", -1, cfg->vocab, 1, &d, e)) < 0) return -1;
    if (p) s->top_k = d < 0 ? 0 : (int)d, sampling |= d > 0;
    if ((p = get_num(o, "repetition_penalty", 1e-3, 100, 0, &d, e)) < 0) return -1;
    if (p) s->repetition_penalty = (float)d;
    if ((p = get_num(o, "seed", -9.2e18, 9.2e18, 1, &d, e)) < 0) return -1;
    if (p) s->seed = (uint64_t)(int64_t)d;
    else s->seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ cfg->req_no;
    for (int i = 0; i < 2; i++) {
        const char *pen = i ? "presence_penalty" : "frequency_penalty";
        if ((p = get_num(o, pen, -2, 2, 0, &d, e)) < 0) return -1;
        if (p && d != 0) return BAD(e, pen, "'%s' is not supported (use repetition_penalty)", pen);
    }
    if ((p = get_bool(o, "logprobs", &b, e)) < 0) return -1;
    if (p && b) return BAD(e, "logprobs", "logprobs are not supported");
    if (sampling && !greedy) s->greedy = 0;
    if (greedy) s->greedy = 1;
    if (get_bool(o, "stream", &r->stream, e) < 0) return -1;
    if (get_bool(o, "return_token_ids", &r->return_ids, e) < 0) return -1;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "stream_options")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) return BAD(e, "stream_options", "'stream_options' must be an object");
        if (get_bool(v, "include_usage", &r->include_usage, e) < 0) return -1;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "stop")) && !cJSON_IsNull(v)) {
        const cJSON *one = v, *it;
        int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
        if (n > SRV_MAX_STOP) return BAD(e, "stop", "at most %d stop strings", SRV_MAX_STOP);
        if (cJSON_IsArray(v)) one = NULL;
        for (int i = 0; i < n; i++) {
            it = one ? one : cJSON_GetArrayItem(v, i);
            if (!cJSON_IsString(it) || !*it->valuestring || strlen(it->valuestring) > 256 ||
                ((unsigned char)it->valuestring[0] & 0xC0) == 0x80) /* starts on a character (see server.c) */
                return BAD(e, "stop", "'stop' must be a non-empty string (at most 256 bytes) or an array of them");
            if (!(r->stop[r->n_stop++] = strdup(it->valuestring)))
                return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "response_format")) && !cJSON_IsNull(v)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "type");
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "text") != 0)
            return BAD(e, "response_format", "only response_format {\"type\": \"text\"} is supported");
    }
    if (parse_media_opts(r, o, e)) return -1;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "mm_processor_kwargs")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) return BAD(e, "mm_processor_kwargs", "'mm_processor_kwargs' must be an object");
        if (parse_media_opts(r, v, e)) return -1;
    }
    if (r->mo.start_s >= 0 && r->mo.end_s >= 0 && r->mo.end_s <= r->mo.start_s)
        return BAD(e, "end", "'end' (%g) must come after 'start' (%g)", r->mo.end_s, r->mo.start_s);
    if (r->mo.min_pixels > 0 && r->mo.max_pixels > 0 && r->mo.min_pixels > r->mo.max_pixels)
        return BAD(e, "min_pixels", "'min_pixels' is above 'max_pixels'");
    return 0;
}

int srv_req_parse(srv_req *r, const char *body, size_t len, srv_cfg *cfg, srv_error *e) {
    memset(r, 0, sizeof *r);
    r->mo = cfg->media;
    r->go = cfg->gen;
    if (!body || len == 0) return BAD(e, NULL, "the request body is empty (a JSON object is expected)");
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o) return BAD(e, NULL, "the request body is not valid JSON");
    int rc = -1;
    if (!cJSON_IsObject(o)) {
        BAD(e, NULL, "the request body must be a JSON object");
        goto out;
    }
    if (parse_params(r, o, cfg, e)) goto out;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (!msgs) {
        BAD(e, "messages", "'messages' is required");
        goto out;
    }
    rc = build_prompt(r, cfg, msgs, e);
out:
    cJSON_Delete(o);
    if (rc) srv_req_free(r);
    return rc;
}

void srv_req_free(srv_req *r) {
    if (!r) return;
    for (int i = 0; i < r->n_tmp; i++) {
        if (r->tmp_files[i]) unlink(r->tmp_files[i]);
        free(r->tmp_files[i]);
    }
    free(r->tmp_files);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->prompt);
    free(r->model);
    memset(r, 0, sizeof *r);
}
