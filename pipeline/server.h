/* server.h — `qv serve`: an OpenAI-compatible HTTP server over one engine (libmicrohttpd).
 *
 *   qv_server_params sp = qv_server_default_params();
 *   sp.port = 8080; sp.media_root = "/srv/videos"; sp.gen = cli-made qv_gen_opts; ...
 *   qv_server *s; qv_err err = {0};
 *   if (qv_server_create(&s, engine, &sp, &err)) { ...err.msg...; }   // binds and starts listening
 *   qv_server_run(s, &stop_flag);       // serves on this thread until *stop_flag (set by SIGTERM)
 *   qv_server_free(s);
 *
 * Endpoints: POST /v1/chat/completions (server_req.h has the request rules; "stream": true answers with
 * server-sent events in OpenAI's chunk format ending with "data: [DONE]"), GET /v1/models, GET /health,
 * GET /metrics (Prometheus text). Every request, /health included, must carry "Authorization: Bearer KEY"
 * when an api_key is set (compared in constant time). Errors are OpenAI error objects with a 4xx/5xx.
 *
 * Threads: libmicrohttpd runs one thread per connection (at most queue + 64 connections); they parse
 * and check requests and queue them. The engine runs on the thread that calls qv_server_run, one request
 * at a time, in arrival order; a full queue answers 503 with Retry-After. A request whose client has
 * gone (socket closed) is skipped, or stopped at its next frame, chunk or token (the engine's abort_cb),
 * and the server goes on. When *stop becomes nonzero the running request finishes and is delivered, the
 * waiting ones get 503, and qv_server_run returns.
 *
 * Binding: host "127.0.0.1", "::1" or "localhost" is loopback; any other address needs api_key, else
 * qv_server_create refuses (QV_ERR_INVALID). Port 0 picks a free port (qv_server_port tells which). */
#ifndef QV_SERVER_H
#define QV_SERVER_H

#include <signal.h>
#include <stddef.h>

#include "core.h"
#include "engine.h"

typedef struct qv_server qv_server;

typedef struct {
    const char *host;        /* "127.0.0.1" (default) */
    int port;                /* 8080 (default); 0 = any free port */
    const char *api_key;     /* NULL = none (loopback binds only) */
    const char *media_root;  /* folder for file:// URLs; NULL = file:// refused */
    int queue;               /* waiting requests at most (default 8), besides the running one */
    size_t max_body;         /* request body limit in bytes (default 256 MB) */
    int max_media;           /* images + videos per request (default 16) */
    const char *model_id;    /* the name /v1/models lists and responses carry (default "qv") */
    int max_tokens_cap;      /* "max_tokens" above this is refused (default 32768) */
    qv_media_opts media;     /* frame sampling and pixel defaults; requests may override per call */
    qv_gen_opts gen;         /* max_tokens (default when a request has none) and sampling defaults */
    const char *tmp_parent;  /* where the private temp folder goes (default $TMPDIR or /tmp) */
    int conn_timeout_s;      /* idle connection timeout (default 120) */
} qv_server_params;

qv_server_params qv_server_default_params(void);

/* 1 for "127.0.0.1", "::1", "[::1]", "localhost" */
int qv_server_host_is_loopback(const char *host);

/* Checks the parameters (key rule, media root), makes the private temp folder, binds and starts the
 * HTTP threads. The engine stays the caller's; it must outlive the server. */
qv_status qv_server_create(qv_server **out, qv_engine *e, const qv_server_params *p, qv_err *err);
int qv_server_port(const qv_server *s);                 /* the bound port */
const char *qv_server_tmp_dir(const qv_server *s);      /* the private folder for decoded data: URLs */

/* Runs requests on the calling thread until *stop is nonzero (poll interval 100 ms), then finishes the
 * running request, answers the waiting ones with 503, and waits (at most 30 s) for the responses to go. */
void qv_server_run(qv_server *s, volatile sig_atomic_t *stop);

void qv_server_free(qv_server *s);                      /* stops listening, removes the temp folder; NULL-safe */

#endif
