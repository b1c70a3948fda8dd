/* cmd_cache.c — qv cache list|du|clear: look into and empty the cache folder (pipeline/cache.h, issue 11). */
#include "cli.h"
#include "cli_common.h"
#include "cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void help(void) {
    printf("usage: qv cache list|du|clear [--cache-dir DIR]\n\n"
           "The cache folder keeps the vision embeddings of each video or image a model has encoded (keyed by\n"
           "the file's content, the frame options and the model) and the KV cache of each prompt prefix up to\n"
           "its last vision block, so that a second question about a video costs only its own tokens.\n\n"
           "  list                     one line per entry, most recently used first: last use, size, kind\n"
           "                           (vision | prefix), media path, model and options\n"
           "  du                       entries and bytes in all\n"
           "  clear                    delete every entry\n"
           "  --cache-dir DIR          the folder (default $XDG_CACHE_HOME/qv, else ~/.cache/qv)\n\n"
           "Runs use the cache by default; --no-cache turns it off, --cache-max SIZE caps it (default 20G,\n"
           "least recently used entries are deleted first).\n");
}

static void human(uint64_t b, char *out, size_t cap) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int k = 0;
    while (v >= 1024 && k < 4) v /= 1024, k++;
    snprintf(out, cap, k ? "%.1f %s" : "%.0f %s", v, u[k]);
}

int qv_cmd_cache(int argc, char **argv) {
    const char *cmd = "cache", *action = NULL, *dir_opt = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return help(), 0;
        if (cli_opt_is(a, "--cache-dir")) {
            if (!(dir_opt = cli_opt_value(cmd, "--cache-dir", argc, argv, &i))) return 2;
        } else if (a[0] == '-') return cli_usage(cmd, "unknown option '%s'", a);
        else if (action) return cli_usage(cmd, "one action: list, du or clear");
        else action = a;
    }
    if (!action) return cli_usage(cmd, "give an action: list, du or clear");
    if (strcmp(action, "list") && strcmp(action, "du") && strcmp(action, "clear"))
        return cli_usage(cmd, "unknown action '%s' (list, du or clear)", action);
    char *dir = dir_opt ? strdup(dir_opt) : qv_cache_default_dir();
    if (!dir) return cli_fail("no cache folder: give --cache-dir DIR ($XDG_CACHE_HOME and $HOME are unset)");
    qv_cache_params cp = qv_cache_default_params();
    cp.dir = dir;
    qv_cache *c = NULL;
    qv_err err = {0};
    if (qv_cache_open(&c, &cp, &err)) {
        free(dir);
        return cli_fail("%s", err.msg);
    }
    int rc = 0;
    if (strcmp(action, "clear") == 0) {
        int n = 0;
        uint64_t b = 0;
        char hb[32];
        qv_status st = qv_cache_clear(c, &n, &b, &err);
        human(b, hb, sizeof hb);
        printf("deleted %d entries (%s) from %s\n", n, hb, dir);
        if (st) rc = cli_fail("%s", err.msg);
    } else {
        qv_cache_entry *e;
        int n;
        if (qv_cache_list(c, &e, &n, &err)) rc = cli_fail("%s", err.msg);
        else {
            uint64_t tot[2] = {0, 0};
            int cnt[2] = {0, 0};
            for (int i = 0; i < n; i++) {
                tot[e[i].kind] += e[i].bytes, cnt[e[i].kind]++;
                if (strcmp(action, "list")) continue;
                char hb[32], tb[32];
                human(e[i].bytes, hb, sizeof hb);
                time_t t = (time_t)e[i].last_use;
                struct tm tm;
                strftime(tb, sizeof tb, "%Y-%m-%d %H:%M", localtime_r(&t, &tm));
                printf("%s  %10s  %-6s  %s\n", tb, hb, e[i].kind == QV_CACHE_KV ? "prefix" : "vision", e[i].desc);
            }
            char hv[32], hk[32], ha[32];
            human(tot[0], hv, sizeof hv);
            human(tot[1], hk, sizeof hk);
            human(tot[0] + tot[1], ha, sizeof ha);
            if (strcmp(action, "du") == 0)
                printf("%s: %d entries, %s (vision: %d, %s; prefix: %d, %s)\n", dir, cnt[0] + cnt[1], ha, cnt[0], hv,
                       cnt[1], hk);
            else if (n == 0) printf("%s: empty\n", dir);
            qv_cache_entries_free(e, n);
        }
    }
    if (fflush(stdout) != 0 && !rc) rc = cli_fail("cannot write to stdout");
    qv_cache_free(c);
    free(dir);
    return rc;
}
