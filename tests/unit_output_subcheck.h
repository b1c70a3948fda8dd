/* unit_output_subcheck.h — a strict SRT / WebVTT checker for tests, written from the formats, not from
 * qv's writer: it shares no code with pipeline/output.c.
 *
 *   char why[256];
 *   int n = subcheck_srt(doc, 60000, why, sizeof why);   // number of cues, or -1 and the reason
 *
 * SRT: cues separated by exactly one blank line; each cue = a sequence number (1, 2, 3, ...), a timing
 * line "HH:MM:SS,mmm --> HH:MM:SS,mmm" (two-digit minutes/seconds < 60, three-digit milliseconds), then
 * one or more non-empty text lines. WebVTT: the "WEBVTT" signature line, a blank line, then cues made
 * of an optional identifier line (no "-->"), a timing line with '.' before the milliseconds, and one or
 * more text lines in which '<' never appears, '&' only starts &amp; &lt; &gt; &nbsp; &lrm; &rlm;, and
 * "-->" never appears. Both: valid UTF-8 (no NUL, no CR), start < end, start >= the previous end
 * (monotonic, non-overlapping), end <= max_end_ms (inside the clip; pass < 0 to skip), LF line ends
 * and a final newline. */
#ifndef QV_SUBCHECK_H
#define QV_SUBCHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int subcheck_fail(char *why, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (why && cap) vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static int subcheck_utf8(const unsigned char *s) {
    while (*s) {
        unsigned c = *s;
        int n;
        unsigned cp;
        if (c < 0x80) {
            s++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
        else return 0;
        for (int i = 1; i < n; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        s += n;
    }
    return 1;
}

/* "HH:MM:SS<sep>mmm" at p (hours: 2+ digits); returns ms or -1. Sets *len to the characters used. */
static long long subcheck_ts(const char *p, char sep, int *len) {
    int i = 0;
    long long h = 0;
    while (p[i] >= '0' && p[i] <= '9') h = h * 10 + (p[i++] - '0');
    if (i < 2 || p[i] != ':') return -1;
    const char *q = p + i + 1;
    for (int k = 0; k < 2; k++)
        if (q[k] < '0' || q[k] > '9') return -1;
    if (q[2] != ':') return -1;
    for (int k = 3; k < 5; k++)
        if (q[k] < '0' || q[k] > '9') return -1;
    if (q[5] != sep) return -1;
    for (int k = 6; k < 9; k++)
        if (q[k] < '0' || q[k] > '9') return -1;
    long long m = (q[0] - '0') * 10 + (q[1] - '0'), s = (q[3] - '0') * 10 + (q[4] - '0');
    long long f = (q[6] - '0') * 100 + (q[7] - '0') * 10 + (q[8] - '0');
    if (m >= 60 || s >= 60) return -1;
    *len = i + 1 + 9;
    return ((h * 60 + m) * 60 + s) * 1000 + f;
}

/* Splits doc into lines in place (a copy is made); returns a malloc'd array of line pointers. */
static char **subcheck_lines(const char *doc, int *n_lines, char **copy) {
    size_t len = strlen(doc);
    *copy = malloc(len + 1);
    memcpy(*copy, doc, len + 1);
    char **lines = malloc(sizeof(char *) * (len + 2));
    int n = 0;
    char *p = *copy;
    while (*p) {
        lines[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    *n_lines = n;
    return lines;
}

static int subcheck_cues(const char *doc, int vtt, long long max_end_ms, char *why, size_t cap) {
    if (!subcheck_utf8((const unsigned char *)doc)) return subcheck_fail(why, cap, "not valid UTF-8");
    if (strchr(doc, '\r')) return subcheck_fail(why, cap, "CR in document");
    size_t len = strlen(doc);
    if (len == 0 || doc[len - 1] != '\n') return subcheck_fail(why, cap, "no final newline");
    char *copy;
    int nl;
    char **L = subcheck_lines(doc, &nl, &copy);
    int i = 0, cues = 0, rc = 0;
    long long prev_end = 0;
    if (vtt) {
        if (nl < 1 || strncmp(L[0], "WEBVTT", 6) != 0 || (L[0][6] != 0 && L[0][6] != ' ' && L[0][6] != '\t')) {
            rc = subcheck_fail(why, cap, "missing WEBVTT signature");
            goto done;
        }
        i = 1;
        if (i < nl && L[i][0] != 0) {
            rc = subcheck_fail(why, cap, "line 2 must be blank");
            goto done;
        }
        i++;
    }
    while (i < nl) {
        if (L[i][0] == 0) {
            rc = subcheck_fail(why, cap, "line %d: extra blank line", i + 1);
            goto done;
        }
        if (!vtt) {
            char *end;
            long v = strtol(L[i], &end, 10);
            if (*end || end == L[i] || v != cues + 1) {
                rc = subcheck_fail(why, cap, "line %d: expected cue number %d, got '%s'", i + 1, cues + 1, L[i]);
                goto done;
            }
            i++;
        } else if (!strstr(L[i], "-->")) {
            i++; /* cue identifier */
        }
        if (i >= nl) {
            rc = subcheck_fail(why, cap, "cue %d: missing timing line", cues + 1);
            goto done;
        }
        int la, lb;
        long long a = subcheck_ts(L[i], vtt ? '.' : ',', &la);
        if (a < 0 || strncmp(L[i] + la, " --> ", 5) != 0) {
            rc = subcheck_fail(why, cap, "line %d: bad timing line '%s'", i + 1, L[i]);
            goto done;
        }
        long long b = subcheck_ts(L[i] + la + 5, vtt ? '.' : ',', &lb);
        if (b < 0 || (L[i][la + 5 + lb] != 0 && (!vtt || L[i][la + 5 + lb] != ' '))) {
            rc = subcheck_fail(why, cap, "line %d: bad timing line '%s'", i + 1, L[i]);
            goto done;
        }
        if (!(a < b)) {
            rc = subcheck_fail(why, cap, "line %d: cue ends before it starts", i + 1);
            goto done;
        }
        if (a < prev_end) {
            rc = subcheck_fail(why, cap, "line %d: cue starts before the previous one ends", i + 1);
            goto done;
        }
        if (max_end_ms >= 0 && b > max_end_ms) {
            rc = subcheck_fail(why, cap, "line %d: cue ends at %lld ms, after the clip (%lld ms)", i + 1, b, max_end_ms);
            goto done;
        }
        prev_end = b;
        i++;
        int text_lines = 0;
        while (i < nl && L[i][0] != 0) {
            if (strstr(L[i], "-->")) {
                rc = subcheck_fail(why, cap, "line %d: '-->' in cue text", i + 1);
                goto done;
            }
            if (vtt) {
                if (strchr(L[i], '<')) {
                    rc = subcheck_fail(why, cap, "line %d: raw '<' in WebVTT text", i + 1);
                    goto done;
                }
                for (const char *p = strchr(L[i], '&'); p; p = strchr(p + 1, '&')) {
                    static const char *ents[] = {"&amp;", "&lt;", "&gt;", "&nbsp;", "&lrm;", "&rlm;"};
                    int ok = 0;
                    for (int k = 0; k < 6; k++) ok |= strncmp(p, ents[k], strlen(ents[k])) == 0;
                    if (!ok) {
                        rc = subcheck_fail(why, cap, "line %d: bare '&' in WebVTT text", i + 1);
                        goto done;
                    }
                }
            }
            text_lines++;
            i++;
        }
        if (!text_lines) {
            rc = subcheck_fail(why, cap, "cue %d: no text", cues + 1);
            goto done;
        }
        cues++;
        if (i < nl) i++; /* the blank separator */
    }
    rc = cues;
done:
    free(L);
    free(copy);
    return rc;
}

static int subcheck_srt(const char *doc, long long max_end_ms, char *why, size_t cap) {
    return subcheck_cues(doc, 0, max_end_ms, why, cap);
}
static int subcheck_vtt(const char *doc, long long max_end_ms, char *why, size_t cap) {
    return subcheck_cues(doc, 1, max_end_ms, why, cap);
}

#endif
