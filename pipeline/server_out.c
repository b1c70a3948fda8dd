/* server_out.c — what `qv serve` answers (server_int.h): replies with OpenAI error objects, the chat
 * completion JSON, the server-sent event stream of chunks, and the Prometheus text of /metrics. */
#include "server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* ---- replies --------------------------------------------------------------------------------------- */

void srv_count_code(qv_server *s, int code) {
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
enum MHD_Result srv_reply(qv_server *s, struct MHD_Connection *c, int code, const char *ctype, char *body,
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
    srv_count_code(s, code);
    return ret;
}

enum MHD_Result srv_reply_json(qv_server *s, struct MHD_Connection *c, int code, cJSON *o) {
    char *body = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return srv_reply(s, c, code, "application/json", body, NULL, NULL);
}

enum MHD_Result srv_reply_err(qv_server *s, struct MHD_Connection *c, const srv_error *e, const char *hdr,
                                 const char *val) {
    return srv_reply(s, c, e->http, "application/json", srv_error_json(e), hdr, val);
}

enum MHD_Result srv_reply_fail(qv_server *s, struct MHD_Connection *c, int http, const char *type, const char *code,
                            const char *msg) {
    srv_error e;
    srv_fail(&e, http, type, code, NULL, "%s", msg);
    return srv_reply_err(s, c, &e, NULL, NULL);
}


void srv_job_free(job *j) {
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
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details"); /* OpenAI's name for reused prompt tokens */
    cJSON_AddNumberToObject(d, "cached_tokens", (double)j->res.n_prefix_reused);
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
void srv_run_error(job *j, srv_error *e) {
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

int srv_run_ok(const job *j) {
    return !j->rejected && (j->st == QV_OK || (j->st == QV_ERR_CANCELLED && j->stop_hit));
}

enum MHD_Result srv_reply_completion(qv_server *s, struct MHD_Connection *c, job *j) {
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
    return srv_reply_json(s, c, 200, o);
}

/* server-sent events: one "data: {chunk}\n\n" per piece of text, a last chunk with finish_reason, the
 * usage chunk when asked, then "data: [DONE]\n\n" */

static void sse_raw(srv_sse *x, const char *a, const char *b, const char *c) {
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

static void sse_add(srv_sse *x, cJSON *o) {
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

ssize_t srv_sse_read(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    srv_sse *x = cls;
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
            if (srv_run_ok(j)) {
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
                srv_run_error(j, &e);
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

void srv_sse_free(void *cls) {
    srv_sse *x = cls;
    job *j = x->j;
    qv_server *s = j->s;
    pthread_mutex_lock(&s->mu);
    j->gone = 1; /* stops the run at its next token when the stream ended early */
    while (j->state != J_DONE) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    srv_job_free(j);
    free(x->buf);
    free(x);
}

enum MHD_Result srv_metrics(qv_server *s, struct MHD_Connection *c) {
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
    OUT("# HELP qv_cache_hits_total Cache hits: vision inputs not decoded nor encoded, runs that reused a prompt prefix.\n"
        "# TYPE qv_cache_hits_total counter\nqv_cache_hits_total{kind=\"vision\"} %llu\n"
        "qv_cache_hits_total{kind=\"prefix\"} %llu\n", s->cache_vision_hits, s->cache_prefix_hits);
    OUT("# HELP qv_cached_prompt_tokens_total Prompt tokens whose KV came from a stored prefix (not prefilled).\n"
        "# TYPE qv_cached_prompt_tokens_total counter\nqv_cached_prompt_tokens_total %llu\n", s->tok_cached);
    pthread_mutex_unlock(&s->mu);
#undef OUT
    if (n >= cap) n = cap - 1;
    b[n] = 0;
    return srv_reply(s, c, 200, "text/plain; version=0.0.4; charset=utf-8", b, NULL, NULL);
}
