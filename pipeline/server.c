/* server.c — the HTTP side of `qv serve` (server.h): libmicrohttpd connection threads parse and queue
 * requests; the thread in qv_server_run runs them on the engine one at a time and hands text to the
 * waiting connection (a JSON answer, or server-sent events as tokens come: server_out.c).
 *
 * Jobs: see server_int.h (server mutex + one condition variable for every change). The client's socket is dup()ed into the job, so the engine thread can poll it (peer closed?) between
 * tokens without racing libmicrohttpd's own close of the original descriptor. */
#define _GNU_SOURCE /* POLLRDHUP */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "server_int.h"

qv_server_params qv_server_default_params(void) {
    qv_server_params p;
    memset(&p, 0, sizeof p);
    p.host = "127.0.0.1";
    p.port = 8080;
    p.queue = 8;
    p.max_body = (size_t)256 << 20;
    p.max_media = 16;
    p.model_id = "qv";
    p.max_tokens_cap = 32768;
    p.media = qv_media_default_opts();
    p.gen = qv_engine_default_gen_opts(NULL);
    p.conn_timeout_s = 120;
    return p;
}

int qv_server_host_is_loopback(const char *h) {
    return h && (!strcmp(h, "127.0.0.1") || !strcmp(h, "::1") || !strcmp(h, "[::1]") || !strcmp(h, "localhost"));
}

int qv_server_port(const qv_server *s) { return s->port; }
const char *qv_server_tmp_dir(const qv_server *s) { return s->tmp_dir; }

/* ---- the engine side ------------------------------------------------------------------------------- */

static int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd pf = {fd, POLLIN | POLLRDHUP, 0};
    return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Which part of j->text may be shown: up to a stop string (then stop_hit), else all but a tail that could
 * still become one. A stop string always starts at or after the old visible mark (text before it was
 * checked not to start one). final: the run ended, nothing more comes. */
static void update_visible(job *j, int final) {
    if (j->stop_hit) return;
    const srv_req *r = &j->req;
    size_t best = (size_t)-1;
    for (int i = 0; i < r->n_stop; i++) {
        const char *hit = memmem(j->text + j->visible, j->n - j->visible, r->stop[i], strlen(r->stop[i]));
        if (hit && (size_t)(hit - j->text) < best) best = (size_t)(hit - j->text);
    }
    if (best != (size_t)-1) {
        j->visible = best;
        j->stop_hit = 1;
        return;
    }
    size_t hold = 0;
    if (!final)
        for (int i = 0; i < r->n_stop; i++) {
            size_t sl = strlen(r->stop[i]);
            for (size_t L = sl - 1 < j->n - j->visible ? sl - 1 : j->n - j->visible; L > hold; L--)
                if (memcmp(j->text + j->n - L, r->stop[i], L) == 0) {
                    hold = L;
                    break;
                }
        }
    j->visible = j->n - hold;
}

static void on_text(void *user, const char *piece, size_t len) {
    job *j = user;
    qv_server *s = j->s;
    pthread_mutex_lock(&s->mu);
    if (!j->stop_hit) {
        if (j->n + len + 1 > j->cap) {
            size_t nc = j->cap ? j->cap * 2 : 1024;
            while (nc < j->n + len + 1) nc *= 2;
            char *q = realloc(j->text, nc);
            if (q) j->text = q, j->cap = nc;
        }
        if (j->n + len + 1 <= j->cap) {
            memcpy(j->text + j->n, piece, len);
            j->n += len;
            j->text[j->n] = 0;
        }
        if (j->t_first == 0) j->t_first = qv_now();
        update_visible(j, 0);
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

static void on_progress(void *user, const char *stage, long done, long total) {
    job *j = user;
    if (strcmp(stage, "prefill") != 0 || done != total) return;
    pthread_mutex_lock(&j->s->mu);
    if (j->state == J_RUNNING) j->state = J_STARTED;
    pthread_cond_broadcast(&j->s->cv);
    pthread_mutex_unlock(&j->s->mu);
}

static int on_abort(void *user) {
    job *j = user;
    pthread_mutex_lock(&j->s->mu);
    int stop = j->gone || j->stop_hit;
    pthread_mutex_unlock(&j->s->mu);
    return stop || client_gone(j->fd);
}

static void run_job(qv_server *s, job *j) {
    j->t_start = qv_now();
    if (client_gone(j->fd)) {
        j->st = qv_errf(&j->err, QV_ERR_CANCELLED, "the client went away before its turn");
    } else {
        qv_gen_opts go = j->req.go;
        go.on_text = on_text;
        go.on_progress = on_progress;
        go.abort_cb = on_abort;
        go.user = j;
        go.media_root = NULL;
        j->st = qv_engine_run_raw(s->e, j->req.prompt, &j->req.mo, &go, &j->res, &j->err);
    }
    j->t_end = qv_now();
    for (int i = 0; i < j->req.n_tmp; i++) /* decoded data: URLs are not needed any more */
        if (j->req.tmp_files[i]) unlink(j->req.tmp_files[i]);
    pthread_mutex_lock(&s->mu);
    update_visible(j, 1);
    int ok = j->st == QV_OK || (j->st == QV_ERR_CANCELLED && j->stop_hit);
    s->n_chat++;
    if (j->st == QV_ERR_CANCELLED && !j->stop_hit) s->n_cancelled++;
    s->tok_prompt += (unsigned long long)j->res.n_prompt;
    s->tok_gen += (unsigned long long)j->res.n_gen;
    s->tok_vision += (unsigned long long)j->res.n_vision_tokens;
    s->cache_vision_hits += (unsigned long long)j->res.n_vision_cached;
    s->cache_prefix_hits += j->res.n_prefix_reused > 0;
    s->tok_cached += (unsigned long long)j->res.n_prefix_reused;
    s->sec_queue += j->t_start - j->t_queued;
    s->sec_media += j->res.t_decode_media;
    s->sec_vision += j->res.t_vision;
    s->sec_prefill += j->res.t_prefill;
    s->sec_generate += j->res.t_generate;
    if (ok && j->t_first > 0) s->ttft_sum += j->t_first - j->t_start, s->ttft_n++;
    double dt = j->t_end - j->t_start;
    s->avg_s = s->avg_s > 0 ? 0.8 * s->avg_s + 0.2 * dt : dt;
    /* logged before J_DONE: from then on the job belongs to its connection thread */
    qv_log(1, "%s: %s, %lld prompt tokens (%lld vision), %d generated, %.2f s%s%s", j->id,
           ok ? "done" : "failed", (long long)j->res.n_prompt, (long long)j->res.n_vision_tokens, j->res.n_gen, dt,
           ok ? "" : ": ", ok ? "" : j->err.msg);
    j->state = J_DONE;
    s->running = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void qv_server_run(qv_server *s, volatile sig_atomic_t *stop) {
    pthread_mutex_lock(&s->mu);
    while (!*stop) {
        if (!s->head) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            continue;
        }
        job *j = s->head;
        s->head = j->next;
        if (!s->head) s->tail = NULL;
        s->n_queued--;
        s->running = 1;
        j->state = J_RUNNING;
        pthread_mutex_unlock(&s->mu);
        run_job(s, j);
        pthread_mutex_lock(&s->mu);
    }
    /* shutdown: no new work; the waiting requests are told so; the answers in flight go out */
    s->closing = 1;
    for (job *j = s->head; j; j = j->next) j->state = J_DONE, j->rejected = 1;
    s->head = s->tail = NULL;
    s->n_queued = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->d) {
        int fd = (int)MHD_quiesce_daemon(s->d); /* stop accepting connections */
        if (fd >= 0) close(fd);
    }
    double t_end = qv_now() + 30;
    pthread_mutex_lock(&s->mu);
    while (s->live > 0 && qv_now() < t_end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- requests -------------------------------------------------------------------------------------- */

static enum MHD_Result busy(qv_server *s, struct MHD_Connection *c) { /* called with s->mu held; unlocks */
    int closing = s->closing;
    double ra = s->avg_s * (s->n_queued + 1) + 1;
    pthread_mutex_unlock(&s->mu);
    char v[32];
    snprintf(v, sizeof v, "%d", (int)(ra < 600 ? ra : 600));
    srv_error er;
    srv_fail(&er, 503, "server_error", closing ? "shutting_down" : "queue_full", NULL,
             closing ? "the server is shutting down" : "the server is busy (queue full); retry later");
    return srv_reply_err(s, c, &er, closing ? NULL : MHD_HTTP_HEADER_RETRY_AFTER, v);
}

static enum MHD_Result chat(qv_server *s, struct MHD_Connection *c, conn *cx) {
    pthread_mutex_lock(&s->mu); /* a full queue refuses before the body is decoded */
    if (s->closing || s->n_queued >= s->p.queue) return busy(s, c);
    pthread_mutex_unlock(&s->mu);
    job *j = calloc(1, sizeof *j);
    if (!j) return srv_reply_fail(s, c, 500, "server_error", NULL, "out of memory");
    j->s = s;
    j->fd = -1;
    srv_cfg cfg = s->cfg;
    pthread_mutex_lock(&s->mu);
    cfg.req_no = ++s->req_no;
    pthread_mutex_unlock(&s->mu);
    snprintf(j->id, sizeof j->id, "chatcmpl-%lx-%llu", (unsigned long)s->started, (unsigned long long)cfg.req_no);
    j->created = time(NULL);
    srv_error er;
    if (srv_req_parse(&j->req, cx->body, cx->n, &cfg, &er)) {
        srv_job_free(j);
        return srv_reply_err(s, c, &er, NULL, NULL);
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) j->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 3);
    pthread_mutex_lock(&s->mu);
    if (s->closing || s->n_queued >= s->p.queue) {
        srv_job_free(j); /* no lock needed: the job is still this thread's own */
        return busy(s, c);
    }
    j->t_queued = qv_now();
    j->state = J_QUEUED;
    if (s->tail) s->tail->next = j;
    else s->head = j;
    s->tail = j;
    s->n_queued++;
    s->live++;
    cx->counted = 1;
    if (j->req.stream) s->n_stream++;
    pthread_cond_broadcast(&s->cv);
    /* wait for the answer (JSON) or for the first token (a stream: errors before it still get a status) */
    while (j->state < (j->req.stream ? J_STARTED : J_DONE)) pthread_cond_wait(&s->cv, &s->mu);
    int done = j->state == J_DONE;
    pthread_mutex_unlock(&s->mu);
    if (done && !srv_run_ok(j)) {
        srv_run_error(j, &er);
        srv_job_free(j);
        return srv_reply_err(s, c, &er, NULL, NULL);
    }
    if (!j->req.stream) {
        enum MHD_Result r = srv_reply_completion(s, c, j);
        srv_job_free(j);
        return r;
    }
    srv_sse *x = calloc(1, sizeof *x);
    struct MHD_Response *resp = x ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, srv_sse_read, x, srv_sse_free) : NULL;
    if (!resp) {
        free(x);
        pthread_mutex_lock(&s->mu);
        j->gone = 1;
        while (j->state != J_DONE) pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        srv_job_free(j);
        return MHD_NO;
    }
    x->j = j;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result r = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp); /* srv_sse_free runs when the connection is done with it */
    srv_count_code(s, 200);
    return r;
}

static enum MHD_Result get_route(qv_server *s, struct MHD_Connection *c, const char *url) {
    if (!strcmp(url, "/health")) {
        pthread_mutex_lock(&s->mu);
        int closing = s->closing, q = s->n_queued, run = s->running;
        pthread_mutex_unlock(&s->mu);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", closing ? "shutting down" : "ok");
        cJSON_AddNumberToObject(o, "queue", q);
        cJSON_AddNumberToObject(o, "running", run);
        return srv_reply_json(s, c, closing ? 503 : 200, o);
    }
    if (!strcmp(url, "/v1/models")) {
        cJSON *o = cJSON_CreateObject(), *d = cJSON_AddArrayToObject(o, "data"), *m = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "list");
        cJSON_AddItemToArray(d, m);
        cJSON_AddStringToObject(m, "id", s->model_id);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)s->started);
        cJSON_AddStringToObject(m, "owned_by", "qv");
        return srv_reply_json(s, c, 200, o);
    }
    if (!strcmp(url, "/metrics")) return srv_metrics(s, c);
    return srv_reply_fail(s, c, 404, "invalid_request_error", "not_found", "no such endpoint");
}

static int auth_ok(qv_server *s, struct MHD_Connection *c) {
    if (!s->api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    while (*h == ' ') h++;
    return srv_const_eq(h, strlen(h), s->api_key, strlen(s->api_key));
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *up, size_t *up_size, void **ptr) {
    (void)version;
    qv_server *s = cls;
    conn *cx = *ptr;
    int post = !strcmp(method, "POST");
    if (!cx) {
        if (!(cx = calloc(1, sizeof *cx))) return MHD_NO;
        *ptr = cx;
        if (!auth_ok(s, c)) {
            srv_error e;
            srv_fail(&e, 401, "invalid_request_error", "invalid_api_key", NULL,
                     "a valid API key is required (Authorization: Bearer KEY)");
            return srv_reply_err(s, c, &e, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        }
        int chat_url = !strcmp(url, "/v1/chat/completions");
        if (post && chat_url) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl && strtoull(cl, NULL, 10) > s->p.max_body) {
                srv_error e;
                srv_fail(&e, 413, "invalid_request_error", "request_too_large", NULL,
                         "the request body is over the server's limit of %zu bytes (--max-body)", s->p.max_body);
                return srv_reply_err(s, c, &e, NULL, NULL);
            }
            return MHD_YES; /* the body comes in the next calls */
        }
        if (!strcmp(method, "GET") && !chat_url) return get_route(s, c, url);
        if (chat_url || !strcmp(url, "/health") || !strcmp(url, "/v1/models") || !strcmp(url, "/metrics"))
            return srv_reply_fail(s, c, 405, "invalid_request_error", "method_not_allowed", "method not allowed here");
        return srv_reply_fail(s, c, 404, "invalid_request_error", "not_found", "no such endpoint");
    }
    if (*up_size) {
        size_t k = *up_size;
        *up_size = 0;
        if (cx->too_big || cx->n + k > s->p.max_body) {
            cx->too_big = 1;
            return MHD_NO; /* chunked upload over the limit: libmicrohttpd cannot answer mid-body; drop it */
        }
        if (cx->n + k + 1 > cx->cap) {
            size_t nc = cx->cap ? cx->cap : 65536;
            while (nc < cx->n + k + 1) nc *= 2;
            char *q = realloc(cx->body, nc);
            if (!q) return MHD_NO;
            cx->body = q, cx->cap = nc;
        }
        memcpy(cx->body + cx->n, up, k);
        cx->n += k;
        cx->body[cx->n] = 0;
        return MHD_YES;
    }
    return chat(s, c, cx);
}

static void completed(void *cls, struct MHD_Connection *c, void **ptr, enum MHD_RequestTerminationCode why) {
    (void)c, (void)why;
    qv_server *s = cls;
    conn *cx = *ptr;
    if (!cx) return;
    if (cx->counted) {
        pthread_mutex_lock(&s->mu);
        s->live--;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    free(cx->body);
    free(cx);
    *ptr = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    qv_log(2, "http: %s", msg);
}

/* ---- create / free --------------------------------------------------------------------------------- */

static int listen_on(const char *host, int port, int *family, qv_err *err) {
    char h[256], ps[16];
    snprintf(h, sizeof h, "%s", host);
    if (h[0] == '[' && h[strlen(h) - 1] == ']') memmove(h, h + 1, strlen(h)), h[strlen(h) - 1] = 0;
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(h, ps, &hints, &res);
    if (rc) {
        qv_errf(err, QV_ERR_INVALID, "cannot resolve host '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, en = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            en = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            en = errno;
            close(fd);
            fd = -1;
            continue;
        }
        *family = a->ai_family;
    }
    freeaddrinfo(res);
    if (fd < 0) qv_errf(err, QV_ERR_IO, "cannot listen on %s port %d: %s", host, port, strerror(en));
    return fd;
}

qv_status qv_server_create(qv_server **out, qv_engine *e, const qv_server_params *p, qv_err *err) {
    *out = NULL;
    if (!e || !p) return qv_errf(err, QV_ERR_INVALID, "server: no engine or parameters");
    const char *host = p->host && *p->host ? p->host : "127.0.0.1";
    const char *key = p->api_key && *p->api_key ? p->api_key : NULL;
    if (!qv_server_host_is_loopback(host) && !key)
        return qv_errf(err, QV_ERR_INVALID,
                       "refusing to listen on %s without an API key: give --api-key KEY or set QV_API_KEY "
                       "(only 127.0.0.1, ::1 and localhost may go without one)", host);
    if (p->port < 0 || p->port > 65535) return qv_errf(err, QV_ERR_INVALID, "port %d is out of range", p->port);
    if (p->queue < 1 || p->queue > 100000) return qv_errf(err, QV_ERR_INVALID, "queue must be 1..100000");
    if (p->max_body < 1024) return qv_errf(err, QV_ERR_INVALID, "max body must be at least 1024 bytes");
    qv_server *s = calloc(1, sizeof *s);
    if (!s) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    s->e = e;
    s->p = *p;
    if (s->p.max_media < 1) s->p.max_media = 16;
    if (s->p.max_tokens_cap < 1) s->p.max_tokens_cap = 32768;
    if (s->p.conn_timeout_s < 1) s->p.conn_timeout_s = 120;
    s->started = time(NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    qv_status st = QV_OK;
    s->host = strdup(host);
    s->api_key = key ? strdup(key) : NULL;
    s->model_id = strdup(p->model_id && *p->model_id ? p->model_id : "qv");
    if (!s->host || (key && !s->api_key) || !s->model_id) {
        st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (p->media_root) {
        struct stat sb;
        if (!(s->media_root = realpath(p->media_root, NULL)) || stat(s->media_root, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            st = qv_errf(err, QV_ERR_INVALID, "--media-root %s: %s", p->media_root,
                         s->media_root ? "not a folder" : strerror(errno));
            goto fail;
        }
    }
    const char *tp = p->tmp_parent && *p->tmp_parent ? p->tmp_parent : getenv("TMPDIR");
    char *tmpl = qv_path_join(tp && *tp ? tp : "/tmp", "qv-serve-XXXXXX");
    if (!tmpl || !mkdtemp(tmpl)) { /* mkdtemp: mode 0700, a fresh name */
        st = qv_errf(err, QV_ERR_IO, "cannot make a private temporary folder: %s", strerror(errno));
        free(tmpl);
        goto fail;
    }
    s->tmp_dir = tmpl;
    s->cfg.chat = qv_engine_is_chat(e);
    s->cfg.media_root = s->media_root;
    s->cfg.tmp_dir = s->tmp_dir;
    s->cfg.max_media = s->p.max_media;
    s->cfg.max_messages = 256;
    s->cfg.max_tokens_cap = s->p.max_tokens_cap;
    s->cfg.vocab = qv_engine_config(e)->text.vocab;
    s->cfg.media = p->media;
    s->cfg.gen = p->gen;
    s->cfg.gen.on_text = NULL, s->cfg.gen.on_progress = NULL, s->cfg.gen.user = NULL, s->cfg.gen.dump = NULL;
    if (s->cfg.gen.max_tokens < 1) s->cfg.gen.max_tokens = 256;

    int family = AF_INET;
    int fd = listen_on(host, p->port, &family, err);
    if (fd < 0) {
        st = err && err->code ? err->code : QV_ERR_IO;
        goto fail;
    }
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        s->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port : ((struct sockaddr_in *)&sa)->sin_port);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, handler, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)(s->p.queue + 64), MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->p.conn_timeout_s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_END);
    if (!s->d) {
        close(fd);
        st = qv_errf(err, QV_ERR_IO, "cannot start the HTTP server on %s port %d", host, s->port);
        goto fail;
    }
    *out = s;
    return QV_OK;
fail:
    qv_server_free(s);
    return st;
}

void qv_server_free(qv_server *s) {
    if (!s) return;
    if (s->d) MHD_stop_daemon(s->d);
    if (s->tmp_dir) rmdir(s->tmp_dir); /* empty: every request removed its files */
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->host);
    if (s->api_key) memset(s->api_key, 0, strlen(s->api_key));
    free(s->api_key);
    free(s->media_root);
    free(s->model_id);
    free(s->tmp_dir);
    free(s);
}
