/* server.c — the HTTP side of `qv serve` (server.h): libmicrohttpd connection threads parse and queue
 * requests; the thread in qv_server_run runs them on the engine one at a time and hands text to the
 * waiting connection (a JSON answer, or server-sent events as tokens come).
 *
 * A job is made by its connection thread, run by the engine thread, and freed by its connection thread
 * once the engine thread has marked it done (server mutex + one condition variable for every change).
 * The client's socket is dup()ed into the job, so the engine thread can poll it (peer closed?) between
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

#include "pipeline/server_req.h"

enum { J_QUEUED, J_RUNNING, J_STARTED, J_DONE };

typedef struct job {
    struct job *next;
    struct qv_server *s;
    srv_req req;
    char id[48];
    time_t created;
    int fd;                  /* dup of the client socket, -1 when unknown */
    int state;               /* J_* (under s->mu) */
    int gone;                /* the client went away (stream closed) */
    int stop_hit;            /* a stop string was generated */
    int rejected;            /* answered 503 at shutdown without running */
    char *text;              /* everything generated so far */
    size_t n, cap, visible;  /* visible: bytes that may be shown (stop strings cut or held back) */
    qv_result res;
    qv_status st;
    qv_err err;
    double t_queued, t_start, t_first, t_end;
} job;

typedef struct {
    int code;
    unsigned long n;
} code_count;

struct qv_server {
    qv_engine *e;
    qv_server_params p;
    char *host, *api_key, *media_root, *model_id, *tmp_dir;
    struct MHD_Daemon *d;
    int port;
    time_t started;
    srv_cfg cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    int n_queued, running, closing, live;
    uint64_t req_no;
    double avg_s;            /* running mean of request seconds (Retry-After) */
    /* metrics (under mu) */
    code_count codes[24];
    unsigned long n_chat, n_cancelled, n_stream;
    unsigned long long tok_prompt, tok_gen, tok_vision;
    double sec_queue, sec_media, sec_vision, sec_prefill, sec_generate, ttft_sum;
    unsigned long ttft_n;
};

typedef struct {
    char *body;
    size_t n, cap;
    int too_big;
    int counted;             /* a chat job of this connection counts in s->live */
} conn;

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

/* ---- replies --------------------------------------------------------------------------------------- */

static void count_code(qv_server *s, int code) {
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < sizeof s->codes / sizeof *s->codes; i++) {
        if (s->codes[i].code == code || s->codes[i].code == 0) {
            s->codes[i].code = code;
            s->codes[i].n++;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* body is malloc'd and taken (NULL: out of memory -> the connection is dropped) */
static enum MHD_Result reply(qv_server *s, struct MHD_Connection *c, int code, const char *ctype, char *body,
                             const char *hdr, const char *val) {
    if (!body) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (hdr) MHD_add_response_header(r, hdr, val);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, r);
    MHD_destroy_response(r);
    count_code(s, code);
    return ret;
}

static enum MHD_Result reply_json(qv_server *s, struct MHD_Connection *c, int code, cJSON *o) {
    char *body = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return reply(s, c, code, "application/json", body, NULL, NULL);
}

static enum MHD_Result reply_err(qv_server *s, struct MHD_Connection *c, const srv_error *e, const char *hdr,
                                 const char *val) {
    return reply(s, c, e->http, "application/json", srv_error_json(e), hdr, val);
}

static enum MHD_Result fail(qv_server *s, struct MHD_Connection *c, int http, const char *type, const char *code,
                            const char *msg) {
    srv_error e;
    srv_fail(&e, http, type, code, NULL, "%s", msg);
    return reply_err(s, c, &e, NULL, NULL);
}

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

/* ---- responses ------------------------------------------------------------------------------------- */

static void job_free(job *j) {
    if (!j) return;
    srv_req_free(&j->req);
    qv_result_free(&j->res);
    free(j->text);
    if (j->fd >= 0) close(j->fd);
    free(j);
}

static const char *finish_reason(const job *j) {
    return j->stop_hit || j->res.stopped ? "stop" : "length";
}

static cJSON *usage_json(const job *j) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)j->res.n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", j->res.n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", (double)j->res.n_prompt + j->res.n_gen);
    cJSON_AddNumberToObject(u, "vision_tokens", (double)j->res.n_vision_tokens);
    return u;
}

static cJSON *timings_json(const job *j) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "queue_s", j->t_start - j->t_queued);
    cJSON_AddNumberToObject(t, "decode_media_s", j->res.t_decode_media);
    cJSON_AddNumberToObject(t, "vision_s", j->res.t_vision);
    cJSON_AddNumberToObject(t, "prefill_s", j->res.t_prefill);
    cJSON_AddNumberToObject(t, "generate_s", j->res.t_generate);
    cJSON_AddNumberToObject(t, "ttft_s", j->t_first > 0 ? j->t_first - j->t_start : 0);
    return t;
}

static cJSON *ids_json(const int32_t *ids, int64_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

static cJSON *chunk_head(const job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->s->model_id);
    return o;
}

/* the engine's message with the private temp paths of data: URLs replaced by "data: URL #k" */
static void hide_tmp_paths(const job *j, char *msg, size_t cap) {
    for (int k = 0; k < j->req.n_tmp; k++) {
        const char *p = j->req.tmp_files[k];
        char *at;
        while (p && (at = strstr(msg, p)) != NULL) {
            char rest[sizeof j->err.msg];
            snprintf(rest, sizeof rest, "%s", at + strlen(p));
            snprintf(at, cap - (size_t)(at - msg), "data: URL #%d%s", k + 1, rest);
        }
    }
}

/* the OpenAI error of a finished run (engine status -> HTTP status) */
static void run_error(job *j, srv_error *e) {
    hide_tmp_paths(j, j->err.msg, sizeof j->err.msg);
    if (j->rejected) {
        srv_fail(e, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
        return;
    }
    switch (j->st) {
    case QV_ERR_NOMEM:
        if (strstr(j->err.msg, "context"))
            srv_fail(e, 400, "invalid_request_error", "context_length_exceeded", "messages", "%s", j->err.msg);
        else srv_fail(e, 400, "invalid_request_error", NULL, "messages", "too large for this server: %s", j->err.msg);
        break;
    case QV_ERR_INVALID:
    case QV_ERR_FORMAT:
    case QV_ERR_IO:
    case QV_ERR_UNSUPPORTED:
        srv_fail(e, 400, "invalid_request_error", NULL, "messages", "%s", j->err.msg);
        break;
    case QV_ERR_CANCELLED:
        srv_fail(e, 499, "invalid_request_error", "cancelled", NULL, "cancelled: the client went away");
        break;
    default:
        srv_fail(e, 500, "server_error", NULL, NULL, "%s", j->err.msg[0] ? j->err.msg : "internal error");
    }
}

static int run_ok(const job *j) {
    return !j->rejected && (j->st == QV_OK || (j->st == QV_ERR_CANCELLED && j->stop_hit));
}

static enum MHD_Result reply_completion(qv_server *s, struct MHD_Connection *c, job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", s->model_id);
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c0);
    cJSON_AddNumberToObject(c0, "index", 0);
    cJSON *m = cJSON_AddObjectToObject(c0, "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    char save = j->text ? j->text[j->visible] : 0;
    if (j->text) j->text[j->visible] = 0;
    cJSON_AddStringToObject(m, "content", j->text ? j->text : "");
    if (j->text) j->text[j->visible] = save;
    cJSON_AddNullToObject(c0, "logprobs");
    cJSON_AddStringToObject(c0, "finish_reason", finish_reason(j));
    if (j->req.return_ids) {
        cJSON_AddItemToObject(c0, "token_ids", ids_json(j->res.gen_ids, j->res.n_gen));
        cJSON_AddItemToObject(o, "prompt_token_ids", ids_json(j->res.prompt_ids, j->res.n_prompt));
    }
    cJSON_AddItemToObject(o, "usage", usage_json(j));
    cJSON_AddItemToObject(o, "timings", timings_json(j));
    return reply_json(s, c, 200, o);
}

/* server-sent events: one "data: {chunk}\n\n" per piece of text, a last chunk with finish_reason, the
 * usage chunk when asked, then "data: [DONE]\n\n" */
typedef struct {
    job *j;
    char *buf;
    size_t n, off, cap, sent;
    int role_sent, finished;
} sse;

static void sse_raw(sse *x, const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c), need = x->n + la + lb + lc + 1;
    if (need > x->cap) {
        size_t nc = x->cap ? x->cap : 1024;
        while (nc < need) nc *= 2;
        char *q = realloc(x->buf, nc);
        if (!q) return; /* the event is lost; the stream still ends properly */
        x->buf = q, x->cap = nc;
    }
    memcpy(x->buf + x->n, a, la);
    memcpy(x->buf + x->n + la, b, lb);
    memcpy(x->buf + x->n + la + lb, c, lc);
    x->n += la + lb + lc;
}

static void sse_add(sse *x, cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (s) sse_raw(x, "data: ", s, "\n\n");
    free(s);
}

static cJSON *delta_chunk(const job *j, const char *role, const char *content, size_t len, const char *finish) {
    cJSON *o = chunk_head(j), *ch = cJSON_AddArrayToObject(o, "choices"), *c0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c0);
    cJSON_AddNumberToObject(c0, "index", 0);
    cJSON *d = cJSON_AddObjectToObject(c0, "delta");
    if (role) cJSON_AddStringToObject(d, "role", role);
    if (content) {
        char *t = strndup(content, len);
        cJSON_AddStringToObject(d, "content", t ? t : "");
        free(t);
    }
    cJSON_AddNullToObject(c0, "logprobs");
    if (finish) cJSON_AddStringToObject(c0, "finish_reason", finish);
    else cJSON_AddNullToObject(c0, "finish_reason");
    return o;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    sse *x = cls;
    job *j = x->j;
    qv_server *s = j->s;
    while (x->off == x->n) {
        if (x->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        x->n = x->off = 0;
        if (!x->role_sent) {
            x->role_sent = 1;
            sse_add(x, delta_chunk(j, "assistant", "", 0, NULL));
            continue;
        }
        pthread_mutex_lock(&s->mu);
        while (j->visible == x->sent && j->state != J_DONE) pthread_cond_wait(&s->cv, &s->mu);
        size_t from = x->sent, to = j->visible;
        int done = j->state == J_DONE;
        x->sent = to;
        pthread_mutex_unlock(&s->mu);
        if (to > from) sse_add(x, delta_chunk(j, NULL, j->text + from, to - from, NULL));
        if (done) { /* the text does not change any more: no lock needed below */
            if (run_ok(j)) {
                cJSON *f = delta_chunk(j, NULL, NULL, 0, finish_reason(j));
                if (j->req.return_ids) {
                    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(f, "choices"), 0);
                    cJSON_AddItemToObject(c0, "token_ids", ids_json(j->res.gen_ids, j->res.n_gen));
                }
                sse_add(x, f);
                if (j->req.include_usage) {
                    cJSON *u = chunk_head(j);
                    cJSON_AddArrayToObject(u, "choices");
                    cJSON_AddItemToObject(u, "usage", usage_json(j));
                    cJSON_AddItemToObject(u, "timings", timings_json(j));
                    sse_add(x, u);
                }
            } else {
                srv_error e;
                run_error(j, &e);
                char *s2 = srv_error_json(&e);
                if (s2) sse_raw(x, "data: ", s2, "\n\n");
                free(s2);
            }
            sse_raw(x, "data: [DONE]\n\n", "", "");
            x->finished = 1;
        }
    }
    size_t k = x->n - x->off < max ? x->n - x->off : max;
    memcpy(out, x->buf + x->off, k);
    x->off += k;
    return (ssize_t)k;
}

static void sse_free(void *cls) {
    sse *x = cls;
    job *j = x->j;
    qv_server *s = j->s;
    pthread_mutex_lock(&s->mu);
    j->gone = 1; /* stops the run at its next token when the stream ended early */
    while (j->state != J_DONE) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    job_free(j);
    free(x->buf);
    free(x);
}

/* ---- requests -------------------------------------------------------------------------------------- */

static enum MHD_Result chat(qv_server *s, struct MHD_Connection *c, conn *cx) {
    job *j = calloc(1, sizeof *j);
    if (!j) return fail(s, c, 500, "server_error", NULL, "out of memory");
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
        job_free(j);
        return reply_err(s, c, &er, NULL, NULL);
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) j->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 3);
    pthread_mutex_lock(&s->mu);
    if (s->closing || s->n_queued >= s->p.queue) {
        int closing = s->closing;
        char ra[32];
        snprintf(ra, sizeof ra, "%d", (int)(s->avg_s * (s->n_queued + 1) + 1 < 600 ? s->avg_s * (s->n_queued + 1) + 1 : 600));
        pthread_mutex_unlock(&s->mu);
        job_free(j);
        srv_fail(&er, 503, "server_error", closing ? "shutting_down" : "queue_full", NULL,
                 closing ? "the server is shutting down" : "the server is busy (queue full); retry later");
        return reply_err(s, c, &er, closing ? NULL : MHD_HTTP_HEADER_RETRY_AFTER, ra);
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
    if (done && !run_ok(j)) {
        run_error(j, &er);
        job_free(j);
        return reply_err(s, c, &er, NULL, NULL);
    }
    if (!j->req.stream) {
        enum MHD_Result r = reply_completion(s, c, j);
        job_free(j);
        return r;
    }
    sse *x = calloc(1, sizeof *x);
    struct MHD_Response *resp = x ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, x, sse_free) : NULL;
    if (!resp) {
        free(x);
        pthread_mutex_lock(&s->mu);
        j->gone = 1;
        while (j->state != J_DONE) pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        job_free(j);
        return MHD_NO;
    }
    x->j = j;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result r = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp); /* sse_free runs when the connection is done with it */
    count_code(s, 200);
    return r;
}

static enum MHD_Result metrics(qv_server *s, struct MHD_Connection *c) {
    size_t cap = 8192;
    char *b = malloc(cap);
    if (!b) return MHD_NO;
    size_t n = 0;
#define OUT(...) n += (size_t)snprintf(b + n, n < cap ? cap - n : 0, __VA_ARGS__)
    pthread_mutex_lock(&s->mu);
    OUT("# HELP qv_http_requests_total HTTP requests answered, by status code.\n# TYPE qv_http_requests_total counter\n");
    for (size_t i = 0; i < sizeof s->codes / sizeof *s->codes && s->codes[i].code; i++)
        OUT("qv_http_requests_total{code=\"%d\"} %lu\n", s->codes[i].code, s->codes[i].n);
    OUT("# HELP qv_chat_completions_total Chat completions run by the engine (finished, failed or cancelled).\n"
        "# TYPE qv_chat_completions_total counter\nqv_chat_completions_total %lu\n", s->n_chat);
    OUT("# HELP qv_chat_streams_total Chat completions asked for as a stream.\n"
        "# TYPE qv_chat_streams_total counter\nqv_chat_streams_total %lu\n", s->n_stream);
    OUT("# HELP qv_chat_cancelled_total Runs stopped because the client went away.\n"
        "# TYPE qv_chat_cancelled_total counter\nqv_chat_cancelled_total %lu\n", s->n_cancelled);
    OUT("# HELP qv_tokens_total Tokens by kind (prompt includes vision).\n# TYPE qv_tokens_total counter\n"
        "qv_tokens_total{kind=\"prompt\"} %llu\nqv_tokens_total{kind=\"vision\"} %llu\n"
        "qv_tokens_total{kind=\"completion\"} %llu\n", s->tok_prompt, s->tok_vision, s->tok_gen);
    OUT("# HELP qv_queue_length Requests waiting for the engine.\n# TYPE qv_queue_length gauge\nqv_queue_length %d\n",
        s->n_queued);
    OUT("# HELP qv_queue_capacity Requests that may wait (--queue).\n# TYPE qv_queue_capacity gauge\n"
        "qv_queue_capacity %d\n", s->p.queue);
    OUT("# HELP qv_requests_running Requests on the engine now (0 or 1).\n# TYPE qv_requests_running gauge\n"
        "qv_requests_running %d\n", s->running);
    OUT("# HELP qv_stage_seconds_total Seconds spent per stage over all requests.\n"
        "# TYPE qv_stage_seconds_total counter\n"
        "qv_stage_seconds_total{stage=\"queue\"} %.6f\nqv_stage_seconds_total{stage=\"decode_media\"} %.6f\n"
        "qv_stage_seconds_total{stage=\"vision\"} %.6f\nqv_stage_seconds_total{stage=\"prefill\"} %.6f\n"
        "qv_stage_seconds_total{stage=\"generate\"} %.6f\n",
        s->sec_queue, s->sec_media, s->sec_vision, s->sec_prefill, s->sec_generate);
    OUT("# HELP qv_time_to_first_token_seconds From the start of a run to its first text.\n"
        "# TYPE qv_time_to_first_token_seconds summary\nqv_time_to_first_token_seconds_sum %.6f\n"
        "qv_time_to_first_token_seconds_count %lu\n", s->ttft_sum, s->ttft_n);
    pthread_mutex_unlock(&s->mu);
#undef OUT
    if (n >= cap) n = cap - 1;
    b[n] = 0;
    return reply(s, c, 200, "text/plain; version=0.0.4; charset=utf-8", b, NULL, NULL);
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
        return reply_json(s, c, closing ? 503 : 200, o);
    }
    if (!strcmp(url, "/v1/models")) {
        cJSON *o = cJSON_CreateObject(), *d = cJSON_AddArrayToObject(o, "data"), *m = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "list");
        cJSON_AddItemToArray(d, m);
        cJSON_AddStringToObject(m, "id", s->model_id);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)s->started);
        cJSON_AddStringToObject(m, "owned_by", "qv");
        return reply_json(s, c, 200, o);
    }
    if (!strcmp(url, "/metrics")) return metrics(s, c);
    return fail(s, c, 404, "invalid_request_error", "not_found", "no such endpoint");
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
            return reply_err(s, c, &e, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        }
        int chat_url = !strcmp(url, "/v1/chat/completions");
        if (post && chat_url) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl && strtoull(cl, NULL, 10) > s->p.max_body) {
                srv_error e;
                srv_fail(&e, 413, "invalid_request_error", "request_too_large", NULL,
                         "the request body is over the server's limit of %zu bytes (--max-body)", s->p.max_body);
                return reply_err(s, c, &e, NULL, NULL);
            }
            return MHD_YES; /* the body comes in the next calls */
        }
        if (!strcmp(method, "GET") && !chat_url) return get_route(s, c, url);
        if (chat_url || !strcmp(url, "/health") || !strcmp(url, "/v1/models") || !strcmp(url, "/metrics"))
            return fail(s, c, 405, "invalid_request_error", "method_not_allowed", "method not allowed here");
        return fail(s, c, 404, "invalid_request_error", "not_found", "no such endpoint");
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
                            (unsigned)(s->p.queue + 16), MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->p.conn_timeout_s,
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
