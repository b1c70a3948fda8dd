/* cmd_serve.c — `qv serve`: the OpenAI-compatible HTTP server (pipeline/server.h) on one engine.
 * Options, the API-key rule, signals (SIGTERM/SIGINT: finish the running request, then exit; a second
 * signal half a second later leaves at once) and the startup line ("listening on http://HOST:PORT",
 * which tests read). */
#include "cli.h"
#include "cli_common.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "server.h"

static volatile sig_atomic_t g_stop;

/* SIGTERM / Ctrl-C: stop after the running request. A second one at least half a second later: leave
 * now (as main.c's handler: one stop request may arrive twice within microseconds). */
static void on_signal(int sig) {
    (void)sig;
    static struct timespec first;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now); /* async-signal-safe */
    if (g_stop) {
        if ((double)(now.tv_sec - first.tv_sec) + (now.tv_nsec - first.tv_nsec) * 1e-9 >= 0.5) _exit(130);
        return;
    }
    first = now;
    g_stop = 1;
}

static void help(void) {
    printf("usage: qv serve --model DIR [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--media-root DIR]\n"
           "                [--queue N] [--max-body BYTES] [options]\n\n"
           "An OpenAI-compatible HTTP server: POST /v1/chat/completions (text, image_url and video_url parts as\n"
           "data: URLs or file:// under --media-root; \"stream\": true for server-sent events), GET /v1/models,\n"
           "GET /health, GET /metrics (Prometheus). One engine: requests run one at a time, in order.\n\n"
           "server:\n"
           "  --host ADDR              address to listen on (default 127.0.0.1); anything but 127.0.0.1, ::1\n"
           "                           or localhost needs an API key\n"
           "  --port N                 TCP port (default 8080; 0 = any free port, printed at startup)\n"
           "  --api-key KEY            require \"Authorization: Bearer KEY\" on every request (default\n"
           "                           $QV_API_KEY; prefer the variable: arguments show in ps)\n"
           "  --media-root DIR         allow file:///PATH URLs for files inside DIR (symlinks resolved);\n"
           "                           without it file:// is refused\n"
           "  --queue N                requests that may wait besides the running one (default 8);\n"
           "                           more get 503 with Retry-After\n"
           "  --max-body BYTES         request body limit, data: URLs included (default 256M; K/M/G suffixes)\n"
           "  --model-id NAME          the model name in /v1/models and answers (default: the folder name)\n"
           "  --max-tokens N           default max_tokens of a request (256); --temperature etc. set the\n"
           "                           sampling defaults, --fps/--max-pixels/... the media defaults; a\n"
           "                           request's own fields override them\n"
           "  --ctx-max N              refuse prompt + max_tokens above N (default: the model's\n"
           "                           max_position_embeddings)\n\n"
           "%s\n"
           "example:\n"
           "  QV_API_KEY=secret qv serve --model ~/Qwen2-VL-7B-Instruct --host 0.0.0.0 --media-root ~/videos\n"
           "  curl -s localhost:8080/v1/chat/completions -H 'Authorization: Bearer secret' -d '{\"messages\":\n"
           "    [{\"role\":\"user\",\"content\":[{\"type\":\"video_url\",\"video_url\":{\"url\":\"file:///home/me/videos/a.mp4\"}},\n"
           "    {\"type\":\"text\",\"text\":\"What happens?\"}]}]}'\n",
           cli_opts_help);
}

static int parse_size(const char *s, size_t *out) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *s == '-') return 0;
    unsigned long long m = 1;
    if (*end == 'k' || *end == 'K') m = 1ull << 10, end++;
    else if (*end == 'm' || *end == 'M') m = 1ull << 20, end++;
    else if (*end == 'g' || *end == 'G') m = 1ull << 30, end++;
    if (*end || v > (1ull << 40) / m) return 0;
    *out = (size_t)(v * m);
    return 1;
}

int qv_cmd_serve(int argc, char **argv) {
    const char *cmd = "serve";
    cli_opts o;
    cli_opts_init(&o);
    qv_server_params sp = qv_server_default_params();
    const char *key = getenv("QV_API_KEY"), *model_id = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return help(), 0;
        int r = cli_opts_parse(&o, cmd, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *v;
        long l;
        if (cli_opt_is(a, "--host")) {
            if (!(v = cli_opt_value(cmd, "--host", argc, argv, &i))) return 2;
            if (!*v) return cli_usage(cmd, "--host needs an address");
            sp.host = v;
        } else if (cli_opt_is(a, "--port")) {
            if (!(v = cli_opt_value(cmd, "--port", argc, argv, &i)) || !cli_parse_int(cmd, "--port", v, 0, 65535, &l))
                return 2;
            sp.port = (int)l;
        } else if (cli_opt_is(a, "--api-key")) {
            if (!(v = cli_opt_value(cmd, "--api-key", argc, argv, &i))) return 2;
            if (!*v) return cli_usage(cmd, "--api-key is empty");
            key = v;
        } else if (cli_opt_is(a, "--media-root")) {
            if (!(v = cli_opt_value(cmd, "--media-root", argc, argv, &i))) return 2;
            sp.media_root = v;
        } else if (cli_opt_is(a, "--queue")) {
            if (!(v = cli_opt_value(cmd, "--queue", argc, argv, &i)) || !cli_parse_int(cmd, "--queue", v, 1, 100000, &l))
                return 2;
            sp.queue = (int)l;
        } else if (cli_opt_is(a, "--max-body")) {
            if (!(v = cli_opt_value(cmd, "--max-body", argc, argv, &i))) return 2;
            if (!parse_size(v, &sp.max_body) || sp.max_body < 1024)
                return cli_usage(cmd, "--max-body takes a size of at least 1024 bytes (e.g. 64M), not '%s'", v);
        } else if (cli_opt_is(a, "--model-id")) {
            if (!(v = cli_opt_value(cmd, "--model-id", argc, argv, &i))) return 2;
            model_id = v;
        } else {
            return cli_usage(cmd, "unknown option or argument '%s'", a);
        }
    }
    sp.api_key = key && *key ? key : NULL;
    if (!qv_server_host_is_loopback(sp.host) && !sp.api_key)
        return cli_fail("refusing to listen on %s without an API key: give --api-key KEY or set QV_API_KEY "
                        "(only 127.0.0.1, ::1 and localhost may go without one)", sp.host);
    if (!o.model) return cli_usage(cmd, "no model: give --model DIR or set QV_MODEL");
    if (o.n_ctx_max == 0) { /* the context the checkpoint was made for bounds every request */
        qv_model_config mc;
        qv_err err = {0};
        if (qv_config_load_dir(&mc, o.model, &err)) return cli_fail("%s", err.msg);
        o.n_ctx_max = mc.text.max_pos;
    }
    qv_engine *e;
    int rc = cli_engine_open(&o, cmd, &e);
    if (rc) return rc;
    qv_gen_opts go;
    cli_gen_opts(&o, e, &go, 256);
    sp.gen = go;
    sp.media = o.media;
    sp.max_tokens_cap = o.n_ctx_max;
    char name[256];
    if (!model_id) {
        const char *m = o.model;
        size_t n = strlen(m);
        while (n > 1 && m[n - 1] == '/') n--;
        size_t b = n;
        while (b > 0 && m[b - 1] != '/') b--;
        snprintf(name, sizeof name, "%.*s", (int)(n - b), m + b);
        model_id = name;
    }
    sp.model_id = model_id;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    qv_server *s;
    qv_err err = {0};
    if (qv_server_create(&s, e, &sp, &err)) {
        qv_engine_free(e);
        return cli_fail("%s", err.msg);
    }
    const char *h = sp.host;
    int v6 = strchr(h, ':') && h[0] != '[';
    fprintf(stderr, "qv serve: listening on http://%s%s%s:%d (model %s, %s prompts%s%s%s)\n", v6 ? "[" : "", h,
            v6 ? "]" : "", qv_server_port(s), model_id, qv_engine_is_chat(e) ? "chat" : "base",
            sp.api_key ? ", API key required" : "", sp.media_root ? ", media root " : "",
            sp.media_root ? sp.media_root : "");
    fflush(stderr);
    qv_server_run(s, &g_stop);
    fprintf(stderr, "qv serve: stopped\n");
    qv_server_free(s);
    qv_engine_free(e);
    return 0;
}
