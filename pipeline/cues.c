/* cues.c — reads back SRT, WebVTT, JSON and text cues written by output.c (see cues.h). */
#define _GNU_SOURCE /* memmem */
#include "cues.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qv_cues_free(qv_segment *segs, int n) {
    if (!segs) return;
    for (int i = 0; i < n; i++) free((char *)segs[i].text);
    free(segs);
}

typedef struct {
    qv_segment *v;
    int n, cap;
} seglist;

static int push(seglist *l, double t0, double t1, char *text) {
    if (!text) return 0;
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 32;
        qv_segment *nv = realloc(l->v, sizeof *nv * (size_t)nc);
        if (!nv) {
            free(text);
            return 0;
        }
        l->v = nv, l->cap = nc;
    }
    l->v[l->n++] = (qv_segment){t0, t1, text};
    return 1;
}

/* "HH:MM:SS,mmm" or "HH:MM:SS.mmm" (hours may be wider) -> seconds; returns the end or NULL */
static const char *parse_ts(const char *p, double *out) {
    unsigned long long h, m, s, ms;
    int used = 0;
    if (sscanf(p, "%llu:%2llu:%2llu%*[,.]%3llu%n", &h, &m, &s, &ms, &used) != 4 || used == 0) return NULL;
    if (m > 59 || s > 59) return NULL;
    *out = (double)(((h * 60 + m) * 60 + s) * 1000 + ms) / 1000.0;
    return p + used;
}

/* "A --> B" at p; returns the end */
static const char *parse_timing(const char *p, double *a, double *b) {
    if (!(p = parse_ts(p, a))) return NULL;
    if (strncmp(p, " --> ", 5) != 0) return NULL;
    return parse_ts(p + 5, b);
}

static char *vtt_unescape(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (!r) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        static const struct { const char *ent; char c; } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}};
        int hit = 0;
        for (int e = 0; e < 3 && !hit; e++) {
            size_t el = strlen(ents[e].ent);
            if (i + el <= n && !strncmp(s + i, ents[e].ent, el)) {
                r[k++] = ents[e].c;
                i += el;
                hit = 1;
            }
        }
        if (!hit) r[k++] = s[i++];
    }
    r[k] = 0;
    return r;
}

static qv_status parse_cues(const char *doc, int vtt, seglist *l, qv_err *err) {
    const char *p = doc;
    int line = 1;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        double a, b;
        const char *t = memmem(p, len, "-->", 3) ? parse_timing(p, &a, &b) : NULL;
        if (memmem(p, len, "-->", 3) && !t)
            return qv_errf(err, QV_ERR_FORMAT, "line %d: a cue timing that is not HH:MM:SS,mmm --> HH:MM:SS,mmm", line);
        p = eol ? eol + 1 : p + len;
        line++;
        if (!t) continue; /* an index, the WEBVTT header, a blank line */
        /* the text: lines up to a blank line */
        const char *s = p;
        while (*p && *p != '\n') {
            const char *e2 = strchr(p, '\n');
            p = e2 ? e2 + 1 : p + strlen(p);
            line++;
        }
        size_t n = (size_t)(p - s);
        while (n && s[n - 1] == '\n') n--;
        char *text = vtt ? vtt_unescape(s, n) : strndup(s, n);
        if (!push(l, a, b, text)) return qv_errf(err, QV_ERR_NOMEM, "out of memory reading cues");
    }
    return QV_OK;
}

static qv_status parse_text(const char *doc, seglist *l, qv_err *err) {
    for (const char *p = doc; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        double a, b;
        const char *t = p[0] == '[' ? parse_timing(p + 1, &a, &b) : NULL;
        if (t && t[0] == ']' && t[1] == ' ') {
            size_t off = (size_t)(t + 2 - p);
            if (!push(l, a, b, strndup(t + 2, len > off ? len - off : 0)))
                return qv_errf(err, QV_ERR_NOMEM, "out of memory reading cues");
        }
        p = eol ? eol + 1 : p + len;
    }
    return QV_OK;
}

static qv_status parse_json(const char *doc, seglist *l, qv_err *err) {
    cJSON *root = cJSON_Parse(doc);
    if (!root) return qv_errf(err, QV_ERR_FORMAT, "not a JSON document");
    const cJSON *segs = cJSON_GetObjectItemCaseSensitive(root, "segments");
    qv_status st = cJSON_IsArray(segs) ? QV_OK : qv_errf(err, QV_ERR_FORMAT, "no \"segments\" array");
    const cJSON *s;
    cJSON_ArrayForEach(s, segs) {
        if (st) break;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, "start"), *b = cJSON_GetObjectItemCaseSensitive(s, "end"),
                    *t = cJSON_GetObjectItemCaseSensitive(s, "text");
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || !cJSON_IsString(t))
            st = qv_errf(err, QV_ERR_FORMAT, "segment %d lacks start, end or text", l->n);
        else if (!push(l, a->valuedouble, b->valuedouble, strdup(t->valuestring)))
            st = qv_errf(err, QV_ERR_NOMEM, "out of memory reading cues");
    }
    cJSON_Delete(root);
    return st;
}

qv_status qv_cues_parse(const char *doc, qv_out_format fmt, qv_segment **segs, int *n, qv_err *err) {
    seglist l = {0};
    qv_status st = fmt == QV_FMT_JSON ? parse_json(doc, &l, err)
                   : fmt == QV_FMT_TEXT ? parse_text(doc, &l, err)
                                        : parse_cues(doc, fmt == QV_FMT_VTT, &l, err);
    if (st) {
        qv_cues_free(l.v, l.n);
        l.v = NULL, l.n = 0;
    }
    *segs = l.v;
    *n = l.n;
    return st;
}

qv_status qv_cues_read(const char *path, qv_out_format fmt, qv_segment **segs, int *n, qv_err *err) {
    *segs = NULL;
    *n = 0;
    char *doc = NULL;
    size_t len = 0;
    qv_status st = qv_read_file(path, &doc, &len, 0, err);
    if (st) return st;
    st = qv_cues_parse(doc, fmt, segs, n, err);
    if (st && st != QV_ERR_NOMEM) qv_err_prefix(err, "%s", path);
    free(doc);
    return st;
}
