/* tok_json.c — the small JSON scanner of tok_json.h (RFC 8259 strings, numbers, literals, nesting). */
#include "tok_json.h"
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void js_init(jscan *s, const char *p, size_t n) {
    memset(s, 0, sizeof *s);
    s->p = p;
    s->end = p + n;
}

void js_free(jscan *s) {
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

void js_ws(jscan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
}

int js_eat(jscan *s, char c) {
    js_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 1;
    }
    return 0;
}

static int put(jscan *s, const char *p, size_t n) {
    if (!qv_grow((void **)&s->buf, &s->cap, s->len + n + 1)) return 0;
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = 0;
    return 1;
}

static int hex4(const char *p, const char *end, uint32_t *v) {
    if (end - p < 4) return 0;
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        x <<= 4;
        if (c >= '0' && c <= '9') x |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') x |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') x |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *v = x;
    return 1;
}

int js_string(jscan *s) {
    js_ws(s);
    s->len = 0;
    if (!put(s, "", 0) || s->p >= s->end || *s->p != '"') return 0;
    s->p++;
    for (;;) {
        const char *q = s->p;
        while (q < s->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
        if (!put(s, s->p, (size_t)(q - s->p))) return 0;
        s->p = q;
        if (q >= s->end || (unsigned char)*q < 0x20) return 0;
        if (*q == '"') {
            s->p++;
            return 1;
        }
        if (s->end - q < 2) return 0;
        char e = q[1], c;
        s->p = q + 2;
        switch (e) {
        case '"': case '\\': case '/': c = e; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': {
            uint32_t u;
            if (!hex4(s->p, s->end, &u)) return 0;
            s->p += 4;
            if (u >= 0xD800 && u <= 0xDBFF) {
                uint32_t lo;
                if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' || !hex4(s->p + 2, s->end, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return 0; /* a lone high surrogate is not text */
                s->p += 6;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                return 0;
            }
            char b[4];
            size_t n;
            if (u < 0x80) b[0] = (char)u, n = 1;
            else if (u < 0x800) b[0] = (char)(0xC0 | u >> 6), b[1] = (char)(0x80 | (u & 0x3F)), n = 2;
            else if (u < 0x10000)
                b[0] = (char)(0xE0 | u >> 12), b[1] = (char)(0x80 | ((u >> 6) & 0x3F)), b[2] = (char)(0x80 | (u & 0x3F)), n = 3;
            else
                b[0] = (char)(0xF0 | u >> 18), b[1] = (char)(0x80 | ((u >> 12) & 0x3F)),
                b[2] = (char)(0x80 | ((u >> 6) & 0x3F)), b[3] = (char)(0x80 | (u & 0x3F)), n = 4;
            if (!put(s, b, n)) return 0;
            continue;
        }
        default: return 0;
        }
        if (!put(s, &c, 1)) return 0;
    }
}

int js_uint(jscan *s, long limit, long *out) {
    js_ws(s);
    const char *p = s->p;
    long v = 0;
    if (p >= s->end || *p < '0' || *p > '9') return 0;
    if (*p == '0' && p + 1 < s->end && p[1] >= '0' && p[1] <= '9') return 0;
    while (p < s->end && *p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v >= limit) return 0;
    }
    if (p < s->end && (*p == '.' || *p == 'e' || *p == 'E')) return 0;
    s->p = p;
    *out = v;
    return 1;
}

static int skip_depth(jscan *s, int depth) {
    if (depth > 256) return 0;
    js_ws(s);
    if (s->p >= s->end) return 0;
    char c = *s->p;
    if (c == '"') return js_string(s);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        s->p++;
        int first = 1, r;
        while ((r = js_next(s, close, &first)) == 1) {
            if (c == '{' && (!js_string(s) || !js_eat(s, ':'))) return 0;
            if (!skip_depth(s, depth + 1)) return 0;
        }
        return r == 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const char *p = s->p + (c == '-');
        if (p >= s->end || *p < '0' || *p > '9') return 0;
        while (p < s->end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-'))
            p++;
        s->p = p;
        return 1;
    }
    static const char *lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(s->end - s->p) >= n && memcmp(s->p, lits[i], n) == 0) {
            s->p += n;
            return 1;
        }
    }
    return 0;
}

int js_skip(jscan *s) { return skip_depth(s, 0); }

int js_next(jscan *s, char close, int *first) {
    js_ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == close) {
        s->p++;
        return 0;
    }
    if (!*first) {
        if (*s->p != ',') return -1;
        s->p++;
        js_ws(s);
        if (s->p < s->end && *s->p == close) return -1; /* trailing comma */
    }
    *first = 0;
    return 1;
}
