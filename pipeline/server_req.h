/* server_req.h — the OpenAI chat-completions protocol of `qv serve`, apart from HTTP (server.c): one
 * request body -> a raw engine prompt + media/generation options, and the JSON that goes back.
 * Internal to pipeline/server*.c.
 *
 *   srv_cfg cfg = {...};                       // prompt form, media root, temp dir, limits, defaults
 *   srv_req r; srv_error er;
 *   if (srv_req_parse(&r, body, len, &cfg, &er)) -> answer er.http with srv_error_json(&er)
 *   ... qv_engine_run_raw(e, r.prompt, &r.mo, &r.go, ...) ...
 *   srv_req_free(&r);                          // also unlinks the decoded data: URL files
 *
 * Media: content parts {"type":"image_url","image_url":{"url":U}} and {"type":"video_url",
 * "video_url":{"url":U}} (vLLM's form; the url may also be given as a bare string). U is a data: URL
 * (base64; decoded into a private file, O_EXCL, mode 0600, in cfg->tmp_dir) or file:///PATH, which must
 * resolve (realpath: symlinks and ".." followed) to a regular file inside cfg->media_root; no "..",
 * no other scheme (http(s) is refused, nothing is ever fetched). User text never becomes a vision
 * marker: text holding "{{image:" / "{{video:" is refused, and the rendered prompt is parsed back and
 * must hold exactly the vision inputs of the request, in order. */
#ifndef QV_SERVER_REQ_H
#define QV_SERVER_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

typedef struct {
    int chat;                /* 1: chat template form, 0: base form ("Question: ... Answer:") */
    const char *media_root;  /* realpath of --media-root; NULL: file:// refused */
    const char *tmp_dir;     /* private folder (0700) for decoded data: URLs */
    int max_media;           /* image/video parts per request */
    int max_messages;
    int max_tokens_cap;      /* max_tokens above this is refused */
    int vocab;               /* top_k bound */
    qv_media_opts media;     /* defaults: per-request fields override */
    qv_gen_opts gen;         /* defaults (max_tokens, sampling) */
    uint64_t req_no;         /* names the temp files */
} srv_cfg;

#define SRV_MAX_STOP 4

typedef struct {
    char *prompt;            /* raw engine prompt ({{image:PATH}} / {{video:PATH}} markers) */
    char **tmp_files;        /* decoded data: URLs, unlinked by srv_req_free */
    int n_tmp;
    int n_images, n_videos;
    qv_media_opts mo;
    qv_gen_opts go;          /* max_tokens, sampling (no callbacks) */
    char *stop[SRV_MAX_STOP];/* stop strings (OpenAI "stop") */
    int n_stop;
    int stream, include_usage, return_ids;
    char *model;             /* the "model" field as sent (NULL when absent) */
} srv_req;

/* An OpenAI error object: {"error":{"message","type","param","code"}} with its HTTP status. */
typedef struct {
    int http;                /* 400, 401, 404, 413, 500, 503 ... */
    const char *type;        /* "invalid_request_error" | "authentication_error" | "server_error" ... */
    const char *code;        /* NULL or e.g. "context_length_exceeded", "invalid_api_key" */
    const char *param;       /* NULL or the offending field */
    char msg[512];
} srv_error;

int srv_fail(srv_error *e, int http, const char *type, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* 0 ok; else -1 with *e set (4xx; 5xx for an internal failure such as a full disk). */
int srv_req_parse(srv_req *r, const char *body, size_t len, srv_cfg *cfg, srv_error *e);
void srv_req_free(srv_req *r);                          /* unlinks the temp files; zeroes *r */

char *srv_error_json(const srv_error *e);              /* malloc'd; NULL on OOM */

/* base64 (RFC 4648, standard alphabet, '=' padding optional) -> out (>= 3*len/4 bytes); -1 on a bad
 * character or length. */
long srv_base64_decode(const char *in, size_t len, unsigned char *out);

/* 1 when a and b are equal, in time that depends only on their lengths. */
int srv_const_eq(const char *a, size_t alen, const char *b, size_t blen);

#endif
