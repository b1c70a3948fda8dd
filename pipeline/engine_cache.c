/* engine_cache.c — the engine's cache keys (engine_cache.h). */
#include "engine_cache.h"

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

char *qv_ec_vision_key(const char *model_id, int prec, const qv_hash *media, int is_video, const qv_media_opts *mo) {
    char *s = malloc(1024);
    if (!s) return NULL;
    snprintf(s, 1024,
             "qv vision key 1\nmodel %s\nprec %d\nmedia %s\nkind %s\nfps %.17g\nmin_frames %d\nmax_frames %d\n"
             "min_pixels %lld\nmax_pixels %lld\ntotal_pixels %lld\nstart %.17g\nend %.17g\n",
             model_id, prec, media->hex, is_video ? "video" : "image", mo->fps, mo->min_frames, mo->max_frames,
             (long long)mo->min_pixels, (long long)mo->max_pixels, (long long)mo->total_pixels, mo->start_s,
             mo->end_s);
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
    size_t n = (size_t)snprintf(s, cap, "qv kv key 1\nmodel %s\nprec %d\nquant %d\nchunk %d\ntokens %lld\nids %s\n"
                                "pos %s %s %s\n", model_id, prec, quant, chunk, (long long)P, hi.hex, hp[0].hex,
                                hp[1].hex, hp[2].hex);
    for (int i = 0; i < n_vision && n < cap; i++) {
        qv_hash h;
        qv_hash_bytes(vision_keys[i], strlen(vision_keys[i]), &h);
        n += (size_t)snprintf(s + n, cap - n, "vision %s\n", h.hex);
    }
    return s;
}
