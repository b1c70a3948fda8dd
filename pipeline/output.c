/* output.c — text, JSON, SRT and WebVTT writers (see output.h). Pure: renders into memory, no I/O. */
#include "output.h"
#include "buf.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- a growable string (the core's qv_buf) ---- */
typedef qv_buf sbuf;

static void sb_put(sbuf *b, const char *s, size_t len) { qv_buf_put(b, s, len); }
static void sb_puts(sbuf *b, const char *s) { qv_buf_puts(b, s); }
static char *sb_finish(sbuf *b) { return qv_buf_finish(b); }

/* ---- formats ---- */
int qv_format_from_name(const char *name) {
    if (!name) return -1;
    if (!strcasecmp(name, "srt")) return QV_FMT_SRT;
    if (!strcasecmp(name, "vtt") || !strcasecmp(name, "webvtt")) return QV_FMT_VTT;
    if (!strcasecmp(name, "json")) return QV_FMT_JSON;
    if (!strcasecmp(name, "text") || !strcasecmp(name, "txt")) return QV_FMT_TEXT;
    return -1;
}

int qv_format_from_path(const char *path) {
    if (!path) return -1;
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash)) return -1;
    return qv_format_from_name(dot + 1);
}

const char *qv_format_ext(qv_out_format f) {
    switch (f) {
    case QV_FMT_SRT: return "srt";
    case QV_FMT_VTT: return "vtt";
    case QV_FMT_JSON: return "json";
    default: return "txt";
    }
}

/* ---- timestamps ---- */
long long qv_time_ms(double seconds) {
    if (!(seconds > 0)) return 0; /* negative and NaN */
    double ms = nearbyint(seconds * 1000.0);
    if (ms > 9.0e15) ms = 9.0e15;
    return (long long)ms;
}

int qv_format_timestamp(char *out, size_t cap, long long ms, char sep) {
    if (ms < 0) ms = 0;
    long long h = ms / 3600000, m = (ms / 60000) % 60, s = (ms / 1000) % 60, f = ms % 1000;
    int n = snprintf(out, cap, "%02lld:%02lld:%02lld%c%03lld", h, m, s, sep, f);
    return n < 0 ? 0 : n;
}

/* ---- text cleaning ---- */
/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is invalid (overlong, surrogate,
 * beyond U+10FFFF, truncated). */
static int utf8_valid_len(const unsigned char *s, size_t left) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
    else return 0;
    if ((size_t)n > left) return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

char *qv_utf8_sanitize(const char *s, size_t len) {
    sbuf b = {0};
    size_t i = 0;
    while (i < len) {
        int n = utf8_valid_len((const unsigned char *)s + i, len - i);
        if (n == 0) {
            sb_puts(&b, "\xEF\xBF\xBD");
            i++;
        } else {
            sb_put(&b, s + i, (size_t)n);
            i += (size_t)n;
        }
    }
    return sb_finish(&b);
}

char *qv_cue_text(const char *text, int vtt) {
    if (!text) text = "";
    char *u = qv_utf8_sanitize(text, strlen(text));
    if (!u) return NULL;
    /* Pass 1: split into lines (CR, LF, CR LF, U+2028/U+2029 end a line), drop other control characters,
     * trim each line, keep only non-blank lines. */
    sbuf b = {0};
    int have_line = 0;
    const char *p = u;
    while (*p) {
        sbuf line = {0};
        while (*p && *p != '\n' && *p != '\r' && strncmp(p, "\xE2\x80\xA8", 3) && strncmp(p, "\xE2\x80\xA9", 3)) {
            unsigned char c = (unsigned char)*p;
            if (c == '\t') sb_put(&line, " ", 1);
            else if (c >= 0x20 && c != 0x7F) sb_put(&line, p, 1);
            p++;
        }
        if (*p == '\r' && p[1] == '\n') p += 2;
        else if (*p == '\n' || *p == '\r') p++;
        else if (*p) p += 3;
        const char *ls = line.p ? line.p : "";
        size_t ll = line.n;
        while (ll && ls[0] == ' ') ls++, ll--;
        while (ll && ls[ll - 1] == ' ') ll--;
        if (ll) {
            if (have_line) sb_put(&b, "\n", 1);
            /* escaping: "-->" may never appear in a cue */
            for (size_t i = 0; i < ll; i++) {
                char c = ls[i];
                if (vtt == 1 && c == '&') sb_puts(&b, "&amp;");
                else if (vtt == 1 && c == '<') sb_puts(&b, "&lt;");
                else if (vtt == 1 && c == '>') sb_puts(&b, "&gt;");
                else if (vtt == 0 && c == '>' && i >= 2 && ls[i - 1] == '-' && ls[i - 2] == '-') {
                    sb_puts(&b, " >"); /* SRT has no escapes: break the "-->" */
                } else sb_put(&b, &c, 1);
            }
            have_line = 1;
        }
        if (line.oom) b.oom = 1;
        free(line.p);
    }
    free(u);
    if (!have_line) sb_puts(&b, "...");
    return sb_finish(&b);
}

/* ---- renderers ---- */
static void render_cues(sbuf *b, int vtt, const qv_segment *segs, size_t n) {
    if (vtt) sb_puts(b, "WEBVTT\n\n");
    long long prev_end = 0;
    int idx = 0;
    for (size_t i = 0; i < n; i++) {
        long long a = qv_time_ms(segs[i].t0), e = qv_time_ms(segs[i].t1);
        if (a < prev_end) a = prev_end; /* never overlap the previous cue */
        if (e <= a) continue;
        char ta[32], te[32], num[32];
        qv_format_timestamp(ta, sizeof ta, a, vtt ? '.' : ',');
        qv_format_timestamp(te, sizeof te, e, vtt ? '.' : ',');
        char *t = qv_cue_text(segs[i].text, vtt);
        if (!t) {
            b->oom = 1;
            return;
        }
        snprintf(num, sizeof num, "%d\n", ++idx);
        sb_puts(b, num);
        sb_puts(b, ta);
        sb_puts(b, " --> ");
        sb_puts(b, te);
        sb_puts(b, "\n");
        sb_puts(b, t);
        sb_puts(b, "\n\n");
        free(t);
        prev_end = e;
    }
}

static void render_text(sbuf *b, const qv_out_meta *meta, const qv_segment *segs, size_t n) {
    const char *summary = meta ? meta->summary : NULL;
    if (summary) {
        char *s = qv_utf8_sanitize(summary, strlen(summary));
        if (!s) {
            b->oom = 1;
            return;
        }
        sb_puts(b, s);
        free(s);
        if (!b->oom && (b->n == 0 || b->p[b->n - 1] != '\n')) sb_puts(b, "\n");
        if (n) sb_puts(b, "\n");
    } else if (n == 1) {
        char *s = qv_utf8_sanitize(segs[0].text ? segs[0].text : "", strlen(segs[0].text ? segs[0].text : ""));
        if (!s) {
            b->oom = 1;
            return;
        }
        sb_puts(b, s);
        free(s);
        if (!b->oom && (b->n == 0 || b->p[b->n - 1] != '\n')) sb_puts(b, "\n");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char ta[32], te[32];
        qv_format_timestamp(ta, sizeof ta, qv_time_ms(segs[i].t0), '.');
        qv_format_timestamp(te, sizeof te, qv_time_ms(segs[i].t1), '.');
        char *t = qv_cue_text(segs[i].text, 2);
        if (!t) {
            b->oom = 1;
            return;
        }
        for (char *q = t; *q; q++)
            if (*q == '\n') *q = ' ';
        sb_puts(b, "[");
        sb_puts(b, ta);
        sb_puts(b, " --> ");
        sb_puts(b, te);
        sb_puts(b, "] ");
        sb_puts(b, t);
        sb_puts(b, "\n");
        free(t);
    }
}

/* cJSON copies strings as given; make them valid UTF-8 first so the document always parses. */
static int json_add_str(cJSON *o, const char *key, const char *val) {
    if (!val) return 1;
    char *s = qv_utf8_sanitize(val, strlen(val));
    if (!s) return 0;
    cJSON *r = cJSON_AddStringToObject(o, key, s);
    free(s);
    return r != NULL;
}

static char *render_json(const qv_out_meta *meta, const qv_segment *segs, size_t n) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    int ok = 1;
    if (meta) {
        ok &= json_add_str(root, "video", meta->video);
        ok &= json_add_str(root, "model", meta->model);
        ok &= json_add_str(root, "task", meta->task);
        ok &= json_add_str(root, "prompt", meta->prompt);
        if (meta->duration >= 0) ok &= cJSON_AddNumberToObject(root, "duration", qv_time_ms(meta->duration) / 1000.0) != NULL;
        ok &= json_add_str(root, "summary", meta->summary);
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "segments");
    ok &= arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *s = cJSON_CreateObject();
        if (!s || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            ok = 0;
            break;
        }
        long long a = qv_time_ms(segs[i].t0), e = qv_time_ms(segs[i].t1);
        char ta[32], te[32];
        qv_format_timestamp(ta, sizeof ta, a, '.');
        qv_format_timestamp(te, sizeof te, e, '.');
        ok &= cJSON_AddNumberToObject(s, "index", (double)i) != NULL;
        ok &= cJSON_AddNumberToObject(s, "start", a / 1000.0) != NULL;
        ok &= cJSON_AddNumberToObject(s, "end", e / 1000.0) != NULL;
        ok &= json_add_str(s, "start_ts", ta);
        ok &= json_add_str(s, "end_ts", te);
        ok &= json_add_str(s, "text", segs[i].text ? segs[i].text : "");
    }
    char *out = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!out) return NULL;
    /* cJSON's allocator is malloc by default; append a final newline */
    size_t len = strlen(out);
    char *r = realloc(out, len + 2);
    if (!r) {
        free(out);
        return NULL;
    }
    r[len] = '\n';
    r[len + 1] = 0;
    return r;
}

char *qv_render(qv_out_format fmt, const qv_out_meta *meta, const qv_segment *segs, size_t n_segs) {
    if (fmt == QV_FMT_JSON) return render_json(meta, segs, n_segs);
    sbuf b = {0};
    if (fmt == QV_FMT_SRT || fmt == QV_FMT_VTT) render_cues(&b, fmt == QV_FMT_VTT, segs, n_segs);
    else render_text(&b, meta, segs, n_segs);
    return sb_finish(&b);
}
