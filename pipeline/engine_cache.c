/* engine_cache.c — the engine's cache keys (engine_cache.h). */
#include "engine_cache.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qv_ec_vmeta_write(const qv_ec_vmeta *m, char *buf, size_t cap) {
    snprintf(buf, cap, "%d %d %d %d %.17g %.17g %.17g %lld %d", m->t, m->gh, m->gw, m->n_frames, m->first_ms,
             m->last_ms, m->duration_s, (long long)m->n_tokens, m->D);
}

int qv_ec_vmeta_parse(const void *meta, size_t len, qv_ec_vmeta *m) {
    if (!meta || len < 2 || len > 512 || ((const char *)meta)[len - 1] != 0) return 0;
    long long nt;
    int got = sscanf(meta, "%d %d %d %d %lg %lg %lg %lld %d", &m->t, &m->gh, &m->gw, &m->n_frames, &m->first_ms,
                     &m->last_ms, &m->duration_s, &nt, &m->D);
    m->n_tokens = nt;
    return got == 9 && m->t > 0 && m->gh > 0 && m->gw > 0 && m->n_tokens > 0 && m->D > 0;
}

static atomic_int engines_seen;

qv_status qv_ec_model_id(qv_cache *c, const qv_ckpt *ck, char id[72], qv_err *err) {
    if (!c) {
        snprintf(id, 72, "mem:%d", atomic_fetch_add(&engines_seen, 1));
        return QV_OK;
    }
    /* hash of the parts' hashes, in a fixed order */
    size_t cap = 4096, n = 0;
    char *txt = malloc(cap);
    if (!txt) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    static const char *cfgs[] = {"config.json", "preprocessor_config.json"};
    qv_status st = QV_OK;
    for (int i = 0; i < 2 && !st; i++) {
        char *p = qv_path_join(ck->dir, cfgs[i]);
        qv_hash h = {"-"};
        if (!p) st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        else if (qv_file_exists(p)) st = qv_hash_file(p, &h, err);
        n += (size_t)snprintf(txt + n, cap - n, "%s %s\n", cfgs[i], h.hex);
        free(p);
    }
    int ns = qv_st_n_shards(ck->st);
    for (int i = 0; i < ns && !st; i++) {
        qv_hash h;
        if ((st = qv_hash_file_memo(c, qv_st_shard_path(ck->st, i), &h, err))) break;
        if (n + 64 > cap) {
            char *t2 = realloc(txt, cap *= 2);
            if (!t2) {
                st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
                break;
            }
            txt = t2;
        }
        n += (size_t)snprintf(txt + n, cap - n, "shard %s\n", h.hex);
    }
    if (!st) {
        qv_hash h;
        qv_hash_bytes(txt, n, &h);
        snprintf(id, 72, "%s", h.hex);
    }
    free(txt);
    return st;
}

/* Every field of qv_media_opts that changes the frames is in the key; the others (mode, threads, pool, abort)
 * do not. A new field fails this check until it is placed on one side or the other. */
_Static_assert(sizeof(qv_media_opts) == 96, "qv_media_opts changed: add the new option to qv_ec_vision_key "
                                            "when it changes the frames, then update this size");

/* "qv vision key N": N goes up whenever the front end (decoding, sampling, resize) or the encoder changes
 * its numbers, so that older entries miss. */
char *qv_ec_vision_key(const char *model_id, int prec, const qv_hash *media, int is_video, const qv_media_opts *mo) {
    char *s = malloc(1024);
    if (!s) return NULL;
    snprintf(s, 1024,
             "qv vision key 4\nmodel %s\nprec %d\nmedia %s\nkind %s\nfps %.17g\nmin_frames %d\nmax_frames %d\n"
             "min_pixels %lld\nmax_pixels %lld\ntotal_pixels %lld\nstart %.17g\nend %.17g\nautorotate %d\n",
             model_id, prec, media->hex, is_video ? "video" : "image", mo->fps, mo->min_frames, mo->max_frames,
             (long long)mo->min_pixels, (long long)mo->max_pixels, (long long)mo->total_pixels, mo->start_s,
             mo->end_s, mo->autorotate);
    return s;
}

char *qv_ec_kv_key(const char *model_id, int prec, int quant, int chunk, const int32_t *ids, const int64_t *pos,
                   int64_t stride, int64_t P, char *const *vision_keys, int n_vision) {
    size_t cap = 512 + (size_t)n_vision * 40;
    char *s = malloc(cap);
    if (!s) return NULL;
    qv_hash hi, hp[3];
    qv_hash_bytes(ids, (size_t)P * sizeof *ids, &hi);
    for (int r = 0; r < 3; r++) qv_hash_bytes(pos + r * stride, (size_t)P * sizeof *pos, &hp[r]);
    size_t n = (size_t)snprintf(s, cap, "qv kv key 4\nmodel %s\nprec %d\nquant %d\nchunk %d\ntokens %lld\nids %s\n"
                                "pos %s %s %s\n", model_id, prec, quant, chunk, (long long)P, hi.hex, hp[0].hex,
                                hp[1].hex, hp[2].hex);
    for (int i = 0; i < n_vision && n < cap; i++) {
        qv_hash h;
        qv_hash_bytes(vision_keys[i], strlen(vision_keys[i]), &h);
        n += (size_t)snprintf(s + n, cap - n, "vision %s\n", h.hex);
    }
    return s;
}

/* ---- engine cache state ---- */

struct qv_ec {
    const qv_ckpt *ck;
    qv_cache *disk;
    char model_id[72];       /* "" until first needed */
    char *mem_key;           /* the prefix in the engine's KV cache */
    int64_t mem_n;
};

static void warn_log(void *user, const char *msg) {
    (void)user;
    qv_log(1, "qv: warning: %s", msg);
}

qv_ec *qv_ec_create(const qv_ckpt *ck, const char *dir, uint64_t max_bytes) {
    qv_ec *ec = calloc(1, sizeof *ec);
    if (!ec) return NULL;
    ec->ck = ck;
    if (dir && *dir) {
        qv_cache_params cp = qv_cache_default_params();
        cp.dir = dir;
        cp.max_bytes = max_bytes;
        cp.warn = warn_log;
        qv_err err = {0};
        if (qv_cache_open(&ec->disk, &cp, &err)) {
            qv_log(1, "qv: warning: cache folder unusable (%s); running uncached", err.msg);
            ec->disk = NULL;
        }
    }
    return ec;
}

void qv_ec_free(qv_ec *ec) {
    if (!ec) return;
    qv_cache_free(ec->disk);
    free(ec->mem_key);
    free(ec);
}

int qv_ec_has_disk(const qv_ec *ec) { return ec->disk != NULL; }

static const char *model_id(qv_ec *ec);

const char *qv_ec_disk_dir(const qv_ec *ec) { return ec->disk ? qv_cache_dir(ec->disk) : NULL; }

const char *qv_ec_fingerprint(qv_ec *ec) {
    const char *id = model_id(ec);
    return ec->disk ? id : NULL;
}

static const char *model_id(qv_ec *ec) {
    if (!ec->model_id[0]) {
        qv_err err = {0};
        double t0 = qv_now();
        if (qv_ec_model_id(ec->disk, ec->ck, ec->model_id, &err)) {
            qv_log(1, "qv: warning: cannot fingerprint the model (%s); running uncached", err.msg);
            qv_cache_free(ec->disk);
            ec->disk = NULL;
            qv_ec_model_id(NULL, ec->ck, ec->model_id, NULL);
        } else if (ec->disk)
            qv_log(2, "model fingerprint %s in %.2f s", ec->model_id, qv_now() - t0);
    }
    return ec->model_id;
}

char *qv_ec_vision_key_for(qv_ec *ec, const char *path, int is_video, const qv_media_opts *mo, int prec,
                           qv_err *err) {
    qv_hash h;
    if (qv_hash_file(path, &h, err)) return NULL;
    char *k = qv_ec_vision_key(model_id(ec), prec, &h, is_video, mo);
    if (!k) qv_errf(err, QV_ERR_NOMEM, "out of memory");
    return k;
}

int qv_ec_vision_peek(qv_ec *ec, const char *key, int D, qv_ec_vmeta *m) {
    if (!ec->disk || !key) return 0;
    qv_cache_hit h;
    if (qv_cache_peek(ec->disk, QV_CACHE_VISION, key, &h) != 1) return 0;
    int ok = qv_ec_vmeta_parse(h.meta, h.meta_len, m) && m->D == D &&
             h.len == (uint64_t)m->n_tokens * (uint64_t)D * sizeof(float);
    if (!ok) qv_cache_warn(ec->disk, "cache: a vision entry's sizes do not match its header; ignored");
    qv_cache_hit_free(&h);
    return ok;
}

int qv_ec_vision_get(qv_ec *ec, const char *key, const qv_ec_vmeta *m, float **rows) {
    *rows = NULL;
    if (!ec->disk || !key) return 0;
    qv_cache_hit h;
    uint64_t want = (uint64_t)m->n_tokens * (uint64_t)m->D * sizeof(float);
    if (qv_cache_get(ec->disk, QV_CACHE_VISION, key, want, &h) != 1) return 0;
    if (h.len != want) {
        qv_cache_hit_free(&h);
        return 0;
    }
    *rows = h.data;
    h.data = NULL;
    qv_cache_hit_free(&h);
    return 1;
}

void qv_ec_vision_put(qv_ec *ec, const char *key, const char *path, const qv_ec_vmeta *m, const float *rows) {
    if (!ec->disk || !key) return;
    char meta[256], desc[1500];
    qv_ec_vmeta_write(m, meta, sizeof meta);
    /* the options are the key's lines after "kind" */
    const char *opts = strstr(key, "\nkind ");
    char o2[400];
    snprintf(o2, sizeof o2, "%s", opts ? opts + 1 : "");
    for (char *q = o2; *q; q++)
        if (*q == '\n') *q = ' ';
    snprintf(desc, sizeof desc, "%.900s | model %.300s | %s| %lld tokens", path, ec->ck->dir, o2,
             (long long)m->n_tokens);
    qv_cache_part part = {rows, (uint64_t)m->n_tokens * (uint64_t)m->D * sizeof(float)};
    qv_cache_put(ec->disk, QV_CACHE_VISION, key, desc, meta, strlen(meta) + 1, &part, 1, 0);
}

int64_t qv_ec_prefix_end(const int32_t *ids, int64_t n, int32_t image_pad, int32_t video_pad, int32_t vision_end) {
    int64_t last = -1;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] == image_pad || ids[i] == video_pad) last = i;
    if (last < 0) return 0;
    int64_t P = last + 1;
    if (P < n && ids[P] == vision_end) P++;
    return P < n ? P : 0;
}

char *qv_ec_kv_key_for(qv_ec *ec, int prec, int quant, int chunk, const int32_t *ids, const int64_t *pos,
                       int64_t stride, int64_t P, char *const *vision_keys, int n_vision) {
    return qv_ec_kv_key(model_id(ec), prec, quant, chunk, ids, pos, stride, P, vision_keys, n_vision);
}

typedef struct {
    qv_lm_ctx *ctx;
    int n;
} kv_io;

static int kv_consume(void *user, const void *buf, uint64_t off, uint64_t len) {
    kv_io *k = user;
    return qv_lm_kv_write(k->ctx, k->n, off, len, buf, NULL) != QV_OK;
}

static int kv_fill(void *user, void *buf, uint64_t off, uint64_t len) {
    kv_io *k = user;
    return qv_lm_kv_read(k->ctx, k->n, off, len, buf, NULL) != QV_OK;
}

int qv_ec_kv_get(qv_ec *ec, const char *key, qv_lm_ctx *ctx, int64_t P) {
    if (!ec->disk || !key) return 0;
    kv_io k = {ctx, (int)P};
    if (qv_cache_get_stream(ec->disk, QV_CACHE_KV, key, qv_lm_kv_bytes(ctx, (int)P), kv_consume, &k) == 1 &&
        qv_lm_n_past(ctx) == P)
        return 1;
    qv_lm_ctx_reset(ctx); /* a partial import is no prefix */
    return 0;
}

int qv_ec_kv_has(qv_ec *ec, const char *key) { return ec->disk && key && qv_cache_has(ec->disk, QV_CACHE_KV, key); }

void qv_ec_kv_put(qv_ec *ec, const char *key, const char *desc, const qv_lm_ctx *ctx, int64_t P) {
    if (!ec->disk || !key) return;
    kv_io k = {(qv_lm_ctx *)ctx, (int)P};
    qv_cache_put_stream(ec->disk, QV_CACHE_KV, key, desc, "kv", 3, qv_lm_kv_bytes(ctx, (int)P), kv_fill, &k);
}

void qv_ec_mem_set(qv_ec *ec, const char *key, int64_t n) {
    free(ec->mem_key);
    ec->mem_key = key ? strdup(key) : NULL;
    ec->mem_n = ec->mem_key ? n : 0;
}

int64_t qv_ec_mem_match(const qv_ec *ec, const char *key) {
    return ec->mem_key && key && strcmp(ec->mem_key, key) == 0 ? ec->mem_n : 0;
}
