/* cli_util.c — shared helpers for the subcommands (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char raw[4096], safe[8192]; /* user text in the message (paths, ids) cannot reach the terminal raw */
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    fprintf(stderr, "qv: %s\n", qv_term_safe(raw, safe, sizeof safe));
    return 1;
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char raw[4096], safe[8192];
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    fprintf(stderr, "qv %s: %s (see 'qv %s --help')\n", cmd, qv_term_safe(raw, safe, sizeof safe), cmd);
    return 2;
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
    if (!s) return cli_usage(cmd, "%s needs a value", opt), 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_usage(cmd, "%s takes a whole number from %ld to %ld, not '%s'", opt, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out) {
    if (!s) return cli_usage(cmd, "%s needs a value", opt), 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_usage(cmd, "%s takes a number from %g to %g, not '%s'", opt, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }

const char *cli_default_model(void) {
    const char *m = getenv("QV_MODEL");
    return m && *m ? m : NULL;
}

char *cli_read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            char *nb = cap > ((size_t)1 << 31) ? NULL : realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb, cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) {
            if (ferror(stdin)) break;
            *len = n;
            return buf;
        }
    }
    free(buf);
    return NULL;
}

int cli_tokenizer_args(const char *cmd, int argc, char **argv, const char *flag, int *flag_set, const char **path,
                       void (*usage)(FILE *)) {
    const char *model = NULL, *tokfile = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--model") == 0 || strcmp(a, "--tokenizer") == 0) {
            if (i + 1 >= argc) return cli_usage(cmd, "%s needs a value", a);
            if (a[2] == 'm') model = argv[++i];
            else tokfile = argv[++i];
        } else if (strcmp(a, flag) == 0) {
            *flag_set = 1;
        } else {
            return a[0] == '-' ? cli_unknown_option(cmd, a) : cli_usage(cmd, "unknown argument '%s'", a);
        }
    }
    if (model && tokfile) return cli_usage(cmd, "give --model or --tokenizer, not both");
    *path = tokfile ? tokfile : model ? model : cli_default_model();
    if (!*path) return cli_usage(cmd, "no tokenizer: give --model DIR, --tokenizer FILE or set QV_MODEL");
    return -1;
}

static volatile sig_atomic_t g_interrupted;
void cli_interrupt(void) { g_interrupted = 1; }
int cli_interrupted(void) { return g_interrupted != 0; }
int cli_abort_cb(void *user) {
    (void)user;
    return g_interrupted != 0 || cli_output_failed(); /* Ctrl-C, or nobody can take the output any more */
}
