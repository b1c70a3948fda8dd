/* server_int.h — what pipeline/server.c (queue, engine thread, HTTP handler) and pipeline/server_out.c
 * (answers: JSON, event stream, metrics) share: the server and job structures. Internal to qv serve.
 *
 * A job is made by its connection thread, run by the engine thread, and freed by its connection thread
 * (or, for a stream, by the stream's free callback) once the engine thread has marked it J_DONE; every
 * field marked "under mu" changes with s->mu held and s->cv broadcast. */
#ifndef QV_SERVER_INT_H
#define QV_SERVER_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "server.h"
#include "server_req.h"

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
    unsigned long long cache_vision_hits, cache_prefix_hits, tok_cached; /* the engine's caches (issue 11) */
};

typedef struct {
    char *body;
    size_t n, cap;
    int too_big;
    int counted;             /* a chat job of this connection counts in s->live */
} conn;
/* replies (server_out.c); body is malloc'd and taken; NULL body or no memory -> MHD_NO (connection dropped) */
void srv_count_code(qv_server *s, int code);
enum MHD_Result srv_reply(qv_server *s, struct MHD_Connection *c, int code, const char *ctype, char *body,
                          const char *hdr, const char *val);
enum MHD_Result srv_reply_json(qv_server *s, struct MHD_Connection *c, int code, cJSON *o);  /* takes o */
enum MHD_Result srv_reply_err(qv_server *s, struct MHD_Connection *c, const srv_error *e, const char *hdr,
                              const char *val);
enum MHD_Result srv_reply_fail(qv_server *s, struct MHD_Connection *c, int http, const char *type,
                               const char *code, const char *msg);
enum MHD_Result srv_metrics(qv_server *s, struct MHD_Connection *c);

/* finished jobs */
void srv_job_free(job *j);                         /* NULL-safe; closes the socket copy */
int srv_run_ok(const job *j);                      /* an answer to send (finished, or cut at a stop string) */
void srv_run_error(job *j, srv_error *e);          /* else: the engine's status as an OpenAI error */
enum MHD_Result srv_reply_completion(qv_server *s, struct MHD_Connection *c, job *j);

/* the event stream: cls is a calloc'd srv_sse with j set; srv_sse_free frees it and the job */
typedef struct {
    job *j;
    char *buf;
    size_t n, off, cap, sent;
    int role_sent, finished;
} srv_sse;
ssize_t srv_sse_read(void *cls, uint64_t pos, char *out, size_t max);
void srv_sse_free(void *cls);

#endif
