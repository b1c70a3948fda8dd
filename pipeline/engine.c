/* engine.c — the run loop where the layers meet (engine.h): media -> vision encoder -> prompt ids with
 * vision blocks -> M-RoPE positions -> chunked prefill -> decode with streaming text.
 * Reference: spec sections 6-8 (positions computed once for the whole prompt, chunks slice embeddings and
 * the three position rows at the same offset). The dumps follow fixtures/golden/<case>.safetensors. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "pipeline/prompt.h"
#include "safetensors.h"
#include "vision/encoder.h"

struct qv_engine {
    qv_engine_params p;
    char *model_dir;
    qv_ckpt *ck;
    qv_tokenizer *tok;
    qv_vision *vis;
    qv_lm *lm;
    qv_pool *pool;
    qv_lm_ctx *ctx;          /* reused while big enough */
    int ctx_n;
    qv_vision_ctx *vctx;     /* reused while big enough */
    int vctx_max;
    int chat;
    double t_load;
    qv_vision_ids vids;
    int32_t eot_id, im_start_id, im_end_id; /* -1 when the tokenizer lacks them */
};

qv_engine_params qv_engine_default_params(void) {
    qv_engine_params p;
    memset(&p, 0, sizeof p);
    p.prec = QV_PREC_FAST;
    p.chunk = 256;
    p.chat = -1;
    p.check_memory = 1;
    return p;
}

static int32_t tok_id(const qv_tokenizer *t, const char *s) { return qv_tok_id(t, s, strlen(s)); }

/* the checkpoint wants chat prompts when its template (tokenizer_config.json or chat_template.json) has roles */
static int detect_chat(const char *dir) {
    static const char *files[] = {"tokenizer_config.json", "chat_template.json"};
    for (int i = 0; i < 2; i++) {
        char *path = qv_path_join(dir, files[i]), *txt = NULL;
        size_t len = 0;
        int chat = 0;
        if (path && qv_file_exists(path) && qv_read_file(path, &txt, &len, 64u << 20, NULL) == QV_OK)
            chat = qv_prompt_template_is_chat(txt, len);
        free(txt);
        free(path);
        if (chat) return 1;
    }
    return 0;
}

qv_status qv_engine_create(qv_engine **out, const qv_engine_params *p, qv_err *err) {
    *out = NULL;
    if (!p || !p->model_dir || !*p->model_dir)
        return qv_errf(err, QV_ERR_INVALID, "no model folder given (--model DIR or $QV_MODEL)");
    if (p->chunk < 0 || p->n_ctx_max < 0 || p->n_threads < 0)
        return qv_errf(err, QV_ERR_INVALID, "engine: negative chunk, n_ctx_max or thread count");
    double t0 = qv_now();
    qv_engine *e = calloc(1, sizeof *e);
    if (!e) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    e->p = *p;
    if (e->p.chunk == 0) e->p.chunk = 256;
    e->model_dir = strdup(p->model_dir);
    e->p.model_dir = e->model_dir;
    qv_status st;
    if (!e->model_dir) {
        st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = qv_ckpt_open(&e->ck, e->model_dir, err))) goto fail;
    qv_st_prefetch(e->ck->st); /* page the weights in while the media are decoded and encoded */
    if ((st = qv_tok_load(&e->tok, e->model_dir, err))) goto fail;
    if ((st = qv_vision_create(&e->vis, e->ck, err))) goto fail;
    if ((st = qv_lm_create(&e->lm, e->ck, err))) goto fail;
    e->pool = qv_pool_create(p->n_threads);
    if (!e->pool) {
        st = qv_errf(err, QV_ERR_NOMEM, "cannot start the thread pool");
        goto fail;
    }
    if (p->quant != QV_QUANT_NONE && (st = qv_lm_set_quant(e->lm, p->quant, e->pool, err))) goto fail;
    const qv_text_hparams *hp = &e->ck->cfg.text;
    e->vids = (qv_vision_ids){hp->vision_start_id, hp->vision_end_id, hp->image_token_id, hp->video_token_id};
    struct { const char *s; int32_t id; } want[] = {
        {"<|vision_start|>", e->vids.vision_start}, {"<|vision_end|>", e->vids.vision_end},
        {"<|image_pad|>", e->vids.image_pad}, {"<|video_pad|>", e->vids.video_pad}};
    for (int i = 0; i < 4; i++) {
        int32_t id = tok_id(e->tok, want[i].s);
        if (id >= 0 && id != want[i].id) {
            st = qv_errf(err, QV_ERR_FORMAT, "%s: the tokenizer has %s = %d but config.json says %d", e->model_dir,
                         want[i].s, id, want[i].id);
            goto fail;
        }
    }
    e->eot_id = tok_id(e->tok, "<|endoftext|>");
    e->im_start_id = tok_id(e->tok, "<|im_start|>");
    e->im_end_id = tok_id(e->tok, "<|im_end|>");
    e->chat = p->chat >= 0 ? !!p->chat : detect_chat(e->model_dir);
    e->t_load = qv_now() - t0;
    *out = e;
    return QV_OK;
fail:
    qv_engine_free(e);
    return st;
}

void qv_engine_free(qv_engine *e) {
    if (!e) return;
    qv_lm_ctx_free(e->ctx);
    qv_vision_ctx_free(e->vctx);
    qv_lm_free(e->lm);
    qv_vision_free(e->vis);
    qv_tok_free(e->tok);
    qv_ckpt_free(e->ck);
    qv_pool_free(e->pool);
    free(e->model_dir);
    free(e);
}

const qv_model_config *qv_engine_config(const qv_engine *e) { return &e->ck->cfg; }
const qv_tokenizer *qv_engine_tokenizer(const qv_engine *e) { return e->tok; }
int qv_engine_is_chat(const qv_engine *e) { return e->chat; }
qv_pool *qv_engine_pool(const qv_engine *e) { return e->pool; }
double qv_engine_load_seconds(const qv_engine *e) { return e->t_load; }

qv_gen_opts qv_engine_default_gen_opts(const qv_engine *e) {
    qv_gen_opts g;
    memset(&g, 0, sizeof g);
    g.max_tokens = 256;
    g.use_stop = 1;
    g.sampling = e ? qv_sampler_params_from_gen(&e->ck->cfg.gen) : qv_sampler_default_params();
    return g;
}

void qv_result_free(qv_result *r) {
    if (!r) return;
    free(r->prompt_ids);
    free(r->position_ids);
    free(r->gen_ids);
    free(r->text);
    for (int i = 0; i < r->n_vision; i++) free(r->vision[i].path);
    free(r->vision);
    memset(r, 0, sizeof *r);
}

qv_status qv_engine_build_prompt(const qv_engine *e, const char *const *videos, int n_videos,
                                 const char *const *images, int n_images, const char *question,
                                 const char *framing, char **out, qv_err *err) {
    *out = NULL;
    if (n_videos < 0 || n_images < 0) return qv_errf(err, QV_ERR_INVALID, "negative input count");
    qv_prompt_media *m = calloc((size_t)(n_videos + n_images) + 1, sizeof *m);
    if (!m) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < n_images; i++) m[n++] = (qv_prompt_media){images[i], 0};
    for (int i = 0; i < n_videos; i++) m[n++] = (qv_prompt_media){videos[i], 1};
    qv_status st = qv_prompt_build(e ? e->chat : 0, NULL, m, n, question, framing, out, err);
    free(m);
    return st;
}

/* ---- one run ---------------------------------------------------------------------------------------- */

typedef struct {
    qv_engine *e;
    const qv_gen_opts *go;
    qv_result *res;
    float *embd;             /* [n_vision_tokens][D], prompt order */
    int64_t *row_off;        /* per vision item: first row in embd */
    int D;
    double t_vision;
    /* current item while streaming pairs */
    int item;
    qv_err *err;
    qv_status st;
} run_state;

/* Keeps layer dumps only when asked (the golden names "vision.*", "lm.layer.*" are the layer ones). */
static void dump_filter(void *user, const char *name, const float *data, int64_t rows, int64_t cols) {
    const qv_gen_opts *go = user;
    if (!go->dump_layers && (strncmp(name, "vision.", 7) == 0 || strncmp(name, "lm.layer.", 9) == 0)) return;
    go->dump(go->dump_user, name, data, rows, cols);
}

static void progress(const qv_gen_opts *go, const char *stage, long done, long total) {
    if (go->on_progress) go->on_progress(go->user, stage, done, total);
}

static qv_status encode_pair(run_state *rs, int k, const float *px) {
    qv_result_vision *v = &rs->res->vision[rs->item];
    const qv_gen_opts *go = rs->go;
    int64_t per_pair = (int64_t)v->gh * v->gw;
    if (go->dump) go->dump(go->dump_user, v->is_video ? "pixel_values_videos" : "pixel_values", px, per_pair, qv_vision_patch_dim(rs->e->vis));
    double t0 = qv_now();
    float *out = rs->embd + (size_t)(rs->row_off[rs->item] + (int64_t)k * (per_pair / 4)) * rs->D;
    qv_status st = qv_vision_encode_pair(rs->e->vctx, rs->e->pool, rs->e->p.prec, px, v->gh, v->gw, out,
                                         go->dump ? dump_filter : NULL, (void *)go, rs->err);
    rs->t_vision += qv_now() - t0;
    if (!st) progress(go, v->is_video ? "video" : "image", k + 1, v->t);
    return st;
}

static int on_pair(void *user, int k, const float *px, const qv_media_info *info) {
    (void)info;
    run_state *rs = user;
    if (qv_cancelled()) {
        rs->st = qv_errf(rs->err, QV_ERR_CANCELLED, "cancelled");
        return 1;
    }
    rs->st = encode_pair(rs, k, px);
    return rs->st != QV_OK;
}

/* Grids and encoder input from a --pixel-values file (golden case layout). */
typedef struct {
    qv_st *st;
    float *px[2];            /* [0] images, [1] videos: all rows, f32 copies */
    int64_t n_rows[2];
    int64_t (*grid[2])[3];
    int n_grid[2];
} pv_file;

static void pv_free(pv_file *f) {
    for (int k = 0; k < 2; k++) {
        free(f->px[k]);
        free(f->grid[k]);
    }
    qv_st_free(f->st);
    memset(f, 0, sizeof *f);
}

static qv_status pv_open(pv_file *f, const char *path, int patch_dim, qv_err *err) {
    memset(f, 0, sizeof *f);
    qv_status st = qv_st_open(&f->st, path, err);
    if (st) return st;
    static const char *px_names[2] = {"pixel_values", "pixel_values_videos"};
    static const char *grid_names[2] = {"image_grid_thw", "video_grid_thw"};
    for (int k = 0; k < 2; k++) {
        const qv_tensor *px = qv_st_get(f->st, px_names[k]), *g = qv_st_get(f->st, grid_names[k]);
        if (!px && !g) continue;
        if (!px || !g)
            return qv_errf(err, QV_ERR_FORMAT, "%s: has %s without %s", path, px ? px_names[k] : grid_names[k],
                           px ? grid_names[k] : px_names[k]);
        if (g->dtype != QV_I64 || g->ndim != 2 || g->shape[1] != 3 || g->shape[0] < 1 || g->shape[0] > 1 << 20)
            return qv_errf(err, QV_ERR_FORMAT, "%s: %s must be I64 [n, 3]", path, grid_names[k]);
        if (px->ndim != 2 || px->shape[1] != patch_dim)
            return qv_errf(err, QV_ERR_FORMAT, "%s: %s must be [patches, %d]", path, px_names[k], patch_dim);
        f->n_grid[k] = (int)g->shape[0];
        f->grid[k] = malloc((size_t)f->n_grid[k] * sizeof *f->grid[k]);
        if (!f->grid[k]) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
        memcpy(f->grid[k], g->data, (size_t)f->n_grid[k] * 24);
        int64_t rows = 0;
        for (int i = 0; i < f->n_grid[k]; i++) {
            int64_t *gt = f->grid[k][i];
            if (gt[0] < 1 || gt[1] < 2 || gt[2] < 2 || gt[1] % 2 || gt[2] % 2 || gt[0] > 1 << 20 || gt[1] > 1 << 14 ||
                gt[2] > 1 << 14)
                return qv_errf(err, QV_ERR_FORMAT, "%s: %s row %d is not a valid grid", path, grid_names[k], i);
            rows += gt[0] * gt[1] * gt[2];
        }
        if (rows != px->shape[0])
            return qv_errf(err, QV_ERR_FORMAT, "%s: %s has %lld rows, its grids imply %lld", path, px_names[k],
                           (long long)px->shape[0], (long long)rows);
        uint64_t n = (uint64_t)rows * (uint64_t)patch_dim;
        f->px[k] = malloc(n * sizeof(float) + 1);
        if (!f->px[k]) return qv_errf(err, QV_ERR_NOMEM, "out of memory for %s", px_names[k]);
        if (!qv_convert_to_f32(f->px[k], px->data, px->dtype, (int64_t)n))
            return qv_errf(err, QV_ERR_FORMAT, "%s: %s is not a float tensor", path, px_names[k]);
        f->n_rows[k] = rows;
    }
    return QV_OK;
}

static char *resolve_path(const char *root, const char *p) {
    if (!root || !*root || p[0] == '/') return strdup(p);
    return qv_path_join(root, p);
}

static qv_status get_ctx(qv_engine *e, int n_ctx, qv_err *err) {
    if (e->ctx && e->ctx_n >= n_ctx) {
        qv_lm_ctx_reset(e->ctx);
        return QV_OK;
    }
    qv_lm_ctx_free(e->ctx);
    e->ctx = NULL;
    e->ctx_n = 0;
    qv_lm_ctx_params cp = qv_lm_ctx_default_params();
    cp.n_ctx = n_ctx;
    cp.chunk = e->p.chunk;
    cp.prec = e->p.prec;
    cp.pool = e->pool;
    cp.check_memory = e->p.check_memory;
    qv_status st = qv_lm_ctx_create(&e->ctx, e->lm, &cp, err);
    if (!st) e->ctx_n = n_ctx;
    return st;
}

static qv_status get_vctx(qv_engine *e, int max_patches, qv_err *err) {
    if (e->vctx && e->vctx_max >= max_patches) return QV_OK;
    qv_vision_ctx_free(e->vctx);
    e->vctx = NULL;
    qv_status st = qv_vision_ctx_create(&e->vctx, e->vis, max_patches, err);
    e->vctx_max = st ? 0 : max_patches;
    return st;
}

/* the generated text, grown as pieces arrive, each piece also streamed to on_text */
typedef struct {
    char *p;
    size_t n, cap;
    const qv_gen_opts *go;
} text_acc;

static qv_status text_add(text_acc *t, const char *piece, size_t len, qv_err *err) {
    if (!len) return QV_OK;
    if (t->n + len + 1 > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 1024;
        while (nc < t->n + len + 1) nc *= 2;
        char *q = realloc(t->p, nc);
        if (!q) return qv_errf(err, QV_ERR_NOMEM, "out of memory for the generated text");
        t->p = q;
        t->cap = nc;
    }
    memcpy(t->p + t->n, piece, len);
    t->n += len;
    t->p[t->n] = 0;
    if (t->go->on_text) t->go->on_text(t->go->user, piece, len);
    return QV_OK;
}

static int is_stop(const qv_gen_opts *go, const int32_t *stops, int n_stops, int32_t id) {
    if (!go->use_stop) return 0;
    for (int i = 0; i < n_stops; i++)
        if (stops[i] == id) return 1;
    return 0;
}

qv_status qv_engine_run_raw(qv_engine *e, const char *prompt_raw, const qv_media_opts *mo_in,
                            const qv_gen_opts *go_in, qv_result *res, qv_err *err) {
    memset(res, 0, sizeof *res);
    qv_gen_opts go = go_in ? *go_in : qv_engine_default_gen_opts(e);
    qv_media_opts mo = mo_in ? *mo_in : qv_media_default_opts();
    if (go.max_tokens < 0) return qv_errf(err, QV_ERR_INVALID, "max_tokens is negative");
    if (!prompt_raw || !*prompt_raw) return qv_errf(err, QV_ERR_INVALID, "the prompt is empty");
    const qv_text_hparams *hp = qv_lm_hparams(e->lm);
    const int D = hp->hidden, V = hp->vocab, patch_dim = qv_vision_patch_dim(e->vis);
    const int merge = e->ck->cfg.vision.spatial_merge_size > 0 ? e->ck->cfg.vision.spatial_merge_size : 2;

    qv_prompt_seg *segs = NULL;
    int n_segs = 0;
    qv_media **media = NULL;
    pv_file pv = {0};
    int64_t *n_tok = NULL, *row_off = NULL;
    int (*grids[2])[3] = {NULL, NULL};
    float *embd = NULL, *logits = NULL;
    int32_t *hist = NULL;
    qv_sampler *smp = NULL;
    qv_tok_stream *ts = NULL;
    char *text = NULL;
    qv_status st = qv_prompt_parse(prompt_raw, &segs, &n_segs, err);
    if (st) goto done;

    /* 1. the vision inputs: grids (cheap: media opened, nothing decoded yet) */
    int nv = 0;
    for (int s = 0; s < n_segs; s++) nv += segs[s].kind != QV_SEG_TEXT;
    res->vision = calloc((size_t)nv + 1, sizeof *res->vision);
    media = calloc((size_t)nv + 1, sizeof *media);
    n_tok = calloc((size_t)nv + 1, sizeof *n_tok);
    row_off = calloc((size_t)nv + 1, sizeof *row_off);
    grids[0] = calloc((size_t)nv + 1, sizeof *grids[0]);
    grids[1] = calloc((size_t)nv + 1, sizeof *grids[1]);
    if (!res->vision || !media || !n_tok || !row_off || !grids[0] || !grids[1]) {
        st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (go.pixel_values_path && (st = pv_open(&pv, go.pixel_values_path, patch_dim, err))) goto done;
    int n_kind[2] = {0, 0};
    for (int s = 0, i = 0; s < n_segs; s++) {
        if (segs[s].kind == QV_SEG_TEXT) continue;
        qv_result_vision *v = &res->vision[i];
        v->is_video = segs[s].kind == QV_SEG_VIDEO;
        v->path = resolve_path(go.media_root, segs[s].text);
        res->n_vision = i + 1;
        if (!v->path) {
            st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
            goto done;
        }
        int k = v->is_video, kth = n_kind[k]++;
        if (go.pixel_values_path) {
            if (kth >= pv.n_grid[k]) {
                st = qv_errf(err, QV_ERR_INVALID, "%s: the prompt has more %s than %s holds grids for",
                             go.pixel_values_path, k ? "videos" : "images", k ? "video_grid_thw" : "image_grid_thw");
                goto done;
            }
            v->t = (int)pv.grid[k][kth][0];
            v->gh = (int)pv.grid[k][kth][1];
            v->gw = (int)pv.grid[k][kth][2];
        } else {
            if (!qv_file_exists(v->path)) {
                st = qv_errf(err, QV_ERR_IO, "%s: no such file (%s in the prompt)", v->path, k ? "video" : "image");
                goto done;
            }
            qv_media_opts o = mo;
            o.force_image = !v->is_video;
            if (!o.pool) o.pool = e->pool;
            double t0 = qv_now();
            st = qv_media_open(&media[i], v->path, &o, err);
            res->t_decode_media += qv_now() - t0;
            if (st) {
                if (err && !strstr(err->msg, v->path)) qv_err_prefix(err, "%s", v->path);
                goto done;
            }
            const qv_media_info *mi = qv_media_get_info(media[i]);
            v->t = mi->t;
            v->gh = mi->gh;
            v->gw = mi->gw;
            v->n_frames = mi->n_frames;
            v->duration_s = mi->duration_s;
            if (mi->n_frames > 0 && mi->pts_ms) {
                v->first_ms = mi->pts_ms[0];
                v->last_ms = mi->pts_ms[mi->n_frames - 1];
            }
        }
        if (v->t < 1 || v->gh < merge || v->gw < merge || v->gh % merge || v->gw % merge) {
            st = qv_errf(err, QV_ERR_FORMAT, "%s: unusable grid %dx%dx%d", v->path, v->t, v->gh, v->gw);
            goto done;
        }
        int *g = grids[k][kth];
        g[0] = v->t, g[1] = v->gh, g[2] = v->gw;
        n_tok[i] = (int64_t)v->t * (v->gh / merge) * (v->gw / merge);
        v->n_tokens = n_tok[i];
        i++;
    }
    if (go.pixel_values_path && (n_kind[0] != pv.n_grid[0] || n_kind[1] != pv.n_grid[1])) {
        st = qv_errf(err, QV_ERR_INVALID, "%s holds %d image and %d video grids, the prompt has %d images and %d videos",
                     go.pixel_values_path, pv.n_grid[0], pv.n_grid[1], n_kind[0], n_kind[1]);
        goto done;
    }

    /* 2. ids with the pads expanded, positions for the whole prompt */
    int64_t *pad_off = calloc((size_t)nv + 1, sizeof *pad_off);
    if (!pad_off) {
        st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        goto done;
    }
    st = qv_prompt_tokenize(e->tok, segs, n_segs, &e->vids, n_tok, &res->prompt_ids, &res->n_prompt, pad_off, err);
    for (int i = 0; i < res->n_vision; i++) res->vision[i].pad_offset = pad_off[i];
    free(pad_off);
    if (st) goto done;
    const int64_t n = res->n_prompt;
    if (n < 1) {
        st = qv_errf(err, QV_ERR_INVALID, "the prompt has no tokens");
        goto done;
    }
    if (n + go.max_tokens > (int64_t)1 << 30 || (e->p.n_ctx_max > 0 && n + go.max_tokens > e->p.n_ctx_max)) {
        st = qv_errf(err, QV_ERR_NOMEM, "the prompt (%lld tokens) + max_tokens (%d) exceed the context limit %d",
                     (long long)n, go.max_tokens, e->p.n_ctx_max > 0 ? e->p.n_ctx_max : 1 << 30);
        goto done;
    }
    int64_t n_vis = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = res->prompt_ids[i];
        n_vis += id == e->vids.image_pad || id == e->vids.video_pad;
    }
    for (int i = 0; i < res->n_vision; i++) {
        row_off[i] = res->n_vision_tokens;
        res->n_vision_tokens += n_tok[i];
    }
    if (n_vis != res->n_vision_tokens) {
        st = qv_errf(err, QV_ERR_INVALID, "the prompt text holds <|image_pad|> or <|video_pad|> outside a "
                                          "{{image:}}/{{video:}} marker");
        goto done;
    }
    res->position_ids = malloc((size_t)n * 3 * sizeof *res->position_ids);
    if (!res->position_ids) {
        st = qv_errf(err, QV_ERR_NOMEM, "out of memory for %lld positions", (long long)n);
        goto done;
    }
    st = qv_mrope_positions(res->prompt_ids, (int)n, (const int(*)[3])grids[0], n_kind[0],
                            (const int(*)[3])grids[1], n_kind[1], hp, merge, res->position_ids, &res->rope_delta, err);
    if (st) goto done;

    /* 3. the KV cache (refused early when it would not fit), then the vision embeddings */
    if ((st = get_ctx(e, (int)(n + go.max_tokens), err))) goto done;
    if (res->n_vision_tokens > 0) {
        uint64_t bytes;
        if (!qv_mul_ok((uint64_t)res->n_vision_tokens, (uint64_t)D * sizeof(float), &bytes) || bytes > SIZE_MAX ||
            !(embd = malloc((size_t)bytes))) {
            st = qv_errf(err, QV_ERR_NOMEM, "out of memory for %lld vision embeddings of %d floats",
                         (long long)res->n_vision_tokens, D);
            goto done;
        }
        int maxp = 0;
        for (int i = 0; i < res->n_vision; i++)
            if (res->vision[i].gh * res->vision[i].gw > maxp) maxp = res->vision[i].gh * res->vision[i].gw;
        if ((st = get_vctx(e, maxp, err))) goto done;
        run_state rs = {e, &go, res, embd, row_off, D, 0, 0, err, QV_OK};
        int64_t pv_row[2] = {0, 0};
        for (int pass = 0; pass < 2; pass++) { /* images first, then videos: the reference's order */
            for (int i = 0; i < res->n_vision; i++) {
                qv_result_vision *v = &res->vision[i];
                if (v->is_video != pass) continue;
                rs.item = i;
                int64_t per_pair = (int64_t)v->gh * v->gw;
                if (go.pixel_values_path) {
                    for (int k = 0; k < v->t; k++) {
                        if (qv_cancelled()) {
                            st = qv_errf(err, QV_ERR_CANCELLED, "cancelled");
                            goto done;
                        }
                        const float *px = pv.px[pass] + (size_t)(pv_row[pass] + k * per_pair) * patch_dim;
                        if ((st = encode_pair(&rs, k, px))) goto done;
                    }
                    pv_row[pass] += v->t * per_pair;
                } else {
                    double t0 = qv_now(), tv0 = rs.t_vision;
                    st = qv_media_run(media[i], on_pair, NULL, &rs, err);
                    res->t_decode_media += (qv_now() - t0) - (rs.t_vision - tv0);
                    if (rs.st) st = rs.st; /* the encoder's error, not "stopped by callback" */
                    if (st) {
                        if (err && st != QV_ERR_CANCELLED && !strstr(err->msg, v->path)) qv_err_prefix(err, "%s", v->path);
                        goto done;
                    }
                    qv_media_free(media[i]);
                    media[i] = NULL;
                }
            }
        }
        res->t_vision = rs.t_vision;
        if (go.dump)
            for (int pass = 0; pass < 2; pass++)
                for (int i = 0; i < res->n_vision; i++)
                    if (res->vision[i].is_video == pass)
                        go.dump(go.dump_user, "vision_embeds", embd + (size_t)row_off[i] * D, n_tok[i], D);
    }

    /* 4. prefill in chunks: ids, embedding rows and the three position rows sliced at the same offset */
    logits = malloc((size_t)V * sizeof *logits);
    hist = malloc((size_t)(n + go.max_tokens) * sizeof *hist);
    if (!logits || !hist) {
        st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        goto done;
    }
    double t0 = qv_now();
    int64_t used_rows = 0;
    for (int64_t s = 0; s < n;) {
        int64_t m = n - s < e->p.chunk ? n - s : e->p.chunk;
        int64_t rows = 0;
        for (int64_t i = s; i < s + m; i++) rows += res->prompt_ids[i] == e->vids.image_pad || res->prompt_ids[i] == e->vids.video_pad;
        st = qv_lm_prefill(e->ctx, res->prompt_ids + s, (int)m, rows ? embd + (size_t)used_rows * D : NULL, (int)rows,
                           res->position_ids + s, n, s + m == n ? logits : NULL, go.dump ? dump_filter : NULL,
                           (void *)&go, err);
        if (st) goto done;
        used_rows += rows;
        s += m;
        progress(&go, "prefill", (long)s, (long)n);
        if (s < n && qv_cancelled()) {
            st = qv_errf(err, QV_ERR_CANCELLED, "cancelled");
            goto done;
        }
    }
    res->t_prefill = qv_now() - t0;
    free(embd);
    embd = NULL;
    if (go.dump) go.dump(go.dump_user, "logits_last", logits, 1, V);

    /* 5. generate */
    int32_t stops[24];
    int n_stops = 0;
    if (go.n_stop > 0) {
        for (int i = 0; i < go.n_stop && i < 16; i++) stops[n_stops++] = go.stop_ids[i];
    } else {
        const qv_gen_hparams *g = &e->ck->cfg.gen;
        for (int i = 0; i < g->n_eos && i < 8; i++) stops[n_stops++] = g->eos_ids[i];
        if (e->eot_id >= 0) stops[n_stops++] = e->eot_id;
        int chat_prompt = 0;
        for (int64_t i = 0; i < n && e->im_start_id >= 0; i++) chat_prompt |= res->prompt_ids[i] == e->im_start_id;
        if (chat_prompt && e->im_end_id >= 0) stops[n_stops++] = e->im_end_id;
    }
    memcpy(hist, res->prompt_ids, (size_t)n * sizeof *hist);
    res->gen_ids = malloc((size_t)go.max_tokens * sizeof *res->gen_ids + 1);
    if (!res->gen_ids || (st = qv_sampler_create(&smp, &go.sampling, V, err))) {
        if (!st) st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        goto done;
    }
    ts = qv_tok_stream_create(e->tok, 1);
    if (!ts) {
        st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        goto done;
    }
    t0 = qv_now();
    text_acc ta = {NULL, 0, 0, &go};
    char piece[1100];
    for (int k = 0; k < go.max_tokens; k++) {
        if (qv_cancelled()) {
            st = qv_errf(err, QV_ERR_CANCELLED, "cancelled");
            break;
        }
        int32_t id = qv_sample(smp, logits, hist, (int)(n + k));
        hist[n + k] = id;
        res->gen_ids[res->n_gen++] = id;
        if (is_stop(&go, stops, n_stops, id)) {
            res->stopped = 1;
            break;
        }
        if ((st = text_add(&ta, piece, qv_tok_stream_push(ts, id, piece, sizeof piece), err))) break;
        progress(&go, "generate", k + 1, go.max_tokens);
        if (k + 1 < go.max_tokens && (st = qv_lm_decode(e->ctx, id, n + k + res->rope_delta, logits, err))) break;
    }
    qv_status st2 = text_add(&ta, piece, qv_tok_stream_flush(ts, piece, sizeof piece), err);
    if (!st) st = st2;
    text = ta.p;
    res->t_generate = qv_now() - t0;
    if (!st && res->stopped) progress(&go, "generate", res->n_gen, res->n_gen);
done:
    if (!res->text) res->text = text ? text : strdup("");
    qv_tok_stream_free(ts);
    qv_sampler_free(smp);
    free(hist);
    free(logits);
    free(embd);
    for (int i = 0; media && i < res->n_vision; i++) qv_media_free(media[i]);
    free(media);
    free(n_tok);
    free(row_off);
    free(grids[0]);
    free(grids[1]);
    pv_free(&pv);
    qv_prompt_segs_free(segs, n_segs);
    return st;
}
