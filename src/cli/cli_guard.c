/* cli_guard.c — guardrails of the command line (issue 13): a question that is really a file name, times
 * written like ffmpeg's -ss, "did you mean" for unknown commands and options, and output streams whose
 * write errors stop the run. Declared in cli.h. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- the question must be a question ---------------------------------------------------------------- */

int cli_looks_like_media_path(const char *s) {
    if (!s || !*s) return 0;
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '?') return 0; /* questions have spaces */
    const char *dot = strrchr(s, '.');
    const char *slash = strrchr(s, '/');
    if (!dot || (slash && dot < slash) || dot == s) return 0;
    static const char *const ext[] = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg",  ".mpeg",
                                      ".flv", ".wmv", ".ts",  ".m2ts", ".3gp", ".ogv", ".gif",  ".png",
                                      ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".y4m"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (strcasecmp(dot, ext[i]) == 0) return 1;
    return 0;
}

int cli_check_question(const char *cmd, const char *q, int n_inputs) {
    if (!q) {
        return cli_usage(cmd, "no question given: put it last, in quotes, e.g. qv %s clip.mp4 \"What happens?\"", cmd);
    }
    int is_file = qv_file_exists(q);
    if (is_file || cli_looks_like_media_path(q)) {
        if (n_inputs == 0)
            return cli_usage(cmd, "'%s' %s, not a question: give the question after it, e.g. qv %s %s \"What happens?\"", q,
                             is_file ? "is a file" : "looks like a file name", cmd, q);
        return cli_usage(cmd, "the last argument '%s' %s, not a question: the question comes last; for several "
                              "inputs give --video A --video B (or --image P) and then the question",
                         q, is_file ? "is a file" : "looks like a file name");
    }
    return 0;
}

/* ---- times: SS[.mmm], MM:SS[.mmm], HH:MM:SS[.mmm] (ffmpeg's -ss) --------------------------------------- */

int cli_time_value(const char *s, double *out) {
    if (!s || !*s) return 0;
    double parts[3];
    int n = 0;
    const char *p = s;
    for (;;) {
        if (n == 3) return 0;
        if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1]))) return 0;
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (errno || end == p || !isfinite(v) || v < 0) return 0;
        for (const char *c = p; c < end; c++) /* no exponents, signs or hex: digits and one '.' */
            if (!isdigit((unsigned char)*c) && *c != '.') return 0;
        int frac = memchr(p, '.', (size_t)(end - p)) != NULL;
        parts[n++] = v;
        p = end;
        if (*p == ':') {
            if (frac) return 0; /* "1.5:30": only the last field has a fraction */
            p++;
            continue;
        }
        if (*p) return 0;
        break;
    }
    /* fields after the first are below 60; only the last may have a fraction */
    for (int i = 1; i < n; i++)
        if (parts[i] >= 60) return 0;
    double t = 0;
    for (int i = 0; i < n; i++) t = t * 60 + parts[i];
    *out = t;
    return 1;
}

int cli_parse_time(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out) {
    double v;
    if (!cli_time_value(s, &v) || v < lo || v > hi) {
        cli_usage(cmd, "%s takes a time: seconds (90, 1.5), MM:SS or HH:MM:SS(.mmm), not '%s'", opt, s ? s : "");
        return 0;
    }
    *out = v;
    return 1;
}

/* ---- did you mean ------------------------------------------------------------------------------------ */

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1; /* a swap of two letters */
            d[i][j] = c;
        }
    return d[la][lb];
}

const char *cli_nearest(const char *word, const char *const *cands, int n) {
    const char *best = NULL;
    int best_d = 1 << 30, n_prefix = 0;
    const char *prefix = NULL;
    size_t lw = strlen(word);
    for (int i = 0; i < n; i++) {
        if (!cands[i] || !strcmp(cands[i], word)) continue;
        if (lw >= 3 && !strncmp(cands[i], word, lw)) {
            if (!prefix || strcmp(prefix, cands[i])) n_prefix++;
            prefix = cands[i];
        }
        int dd = edit_distance(word, cands[i]);
        if (dd < best_d) best_d = dd, best = cands[i];
    }
    int limit = lw <= 4 ? 1 : lw <= 8 ? 2 : 3;
    if (best && best_d <= limit) return best;
    if (n_prefix == 1) return prefix; /* "--max-tok" -> "--max-tokens" */
    return NULL;
}

/* every "--word" (and "-o") of a help text, deduplicated */
static int collect_options(const char *text, char ***out) {
    int n = 0, cap = 0;
    char **v = NULL;
    for (const char *p = text; p && *p; p++) {
        int start = (p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '-'));
        size_t k = 0;
        if (start && p[0] == '-' && p[1] == '-' && islower((unsigned char)p[2])) {
            k = 2;
            while (islower((unsigned char)p[k]) || isdigit((unsigned char)p[k]) || p[k] == '-') k++;
        } else if (start && p[0] == '-' && isalpha((unsigned char)p[1]) &&
                   !(isalnum((unsigned char)p[2]) || p[2] == '-')) {
            k = 2;
        }
        if (!k) continue;
        while (k > 2 && p[k - 1] == '-') k--;
        int dup = 0;
        for (int i = 0; i < n && !dup; i++) dup = strlen(v[i]) == k && !strncmp(v[i], p, k);
        if (!dup) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                char **nv = realloc(v, sizeof *v * (size_t)cap);
                if (!nv) break;
                v = nv;
            }
            if (!(v[n] = strndup(p, k))) break;
            n++;
        }
        p += k - 1;
    }
    *out = v;
    return n;
}

/* the --help text of a command, captured by running it with stdout sent to a temporary file */
static char *help_text(const char *cmd) {
    FILE *tf = tmpfile();
    if (!tf) return NULL;
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    if (saved < 0) {
        fclose(tf);
        return NULL;
    }
    dup2(fileno(tf), STDOUT_FILENO);
    char a0[64], a1[] = "--help";
    snprintf(a0, sizeof a0, "%s", cmd);
    char *argv[] = {a0, a1, NULL};
    qv_cli_dispatch(cmd, 2, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    long n = ftell(tf);
    char *s = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (s) {
        rewind(tf);
        size_t got = fread(s, 1, (size_t)n, tf);
        s[got] = 0;
    }
    fclose(tf);
    return s;
}

const char *cli_nearest_option(const char *cmd, const char *name) {
    static char out[96];
    char *text = help_text(cmd);
    char **opts = NULL;
    int n = collect_options(text, &opts);
    const char *near = cli_nearest(name, (const char *const *)opts, n);
    snprintf(out, sizeof out, "%s", near ? near : "");
    for (int i = 0; i < n; i++) free(opts[i]);
    free(opts);
    free(text);
    return out[0] ? out : NULL;
}

int cli_unknown_option(const char *cmd, const char *arg) {
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
    char *text = help_text(cmd);
    char **opts = NULL;
    int n = collect_options(text, &opts);
    const char *near = cli_nearest(name, (const char *const *)opts, n);
    int rc = near ? cli_usage(cmd, "unknown option '%s' (did you mean %s?)", arg, near)
                  : cli_usage(cmd, "unknown option '%s'", arg);
    for (int i = 0; i < n; i++) free(opts[i]);
    free(opts);
    free(text);
    return rc;
}

/* ---- output streams whose errors stop the run ------------------------------------------------------- */

static volatile int g_output_failed;
void cli_output_fail_stop(void) { g_output_failed = 1; }
int cli_output_failed(void) { return g_output_failed != 0; }

int cli_out_write(cli_out *o, const void *p, size_t n) {
    if (o->err) return -1;
    errno = 0;
    if ((n && fwrite(p, 1, n, o->f) != n) || fflush(o->f) != 0 || ferror(o->f)) {
        o->err = errno ? errno : EIO;
        cli_output_fail_stop(); /* cli_abort_cb stops the run at once: nobody reads what comes next */
        return -1;
    }
    return 0;
}

int cli_out_fail(const cli_out *o, const char *what) {
    if (o->err == EPIPE)
        return cli_fail("cannot write %s: the reader closed the pipe; stopped", what);
    return cli_fail("cannot write %s: %s; stopped", what, strerror(o->err));
}
