/* engine.c — where the layers meet (engine.h): the engine object, and one run as five phases over one run
 * struct (qv_run): plan inputs -> tokenize and place -> encode vision -> prefill -> generate, each a static
 * function reading what the earlier ones left. Hooks for a cache: encode_input() makes one input's rows
 * of the embeddings (a cache hit can fill them instead), prefill() starts at run.prefill_start with the
 * tokens before it already in the KV cache and honours run.cuts.
 * Reference: spec sections 6-8 (positions computed once for the whole prompt, chunks slice embeddings and
 * the three position rows at the same offset). The dumps follow fixtures/golden/<case>.safetensors. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "checkpoint.h"
#include "model.h"
#include "pixel_values.h"
#include "prompt.h"
#include "safetensors.h"
#include "encoder.h"

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
    if ((st = qv_model_open(&e->ck, e->model_dir, err))) goto fail;
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

/* ---- one run ---------------------------------------------------------------------------------------- */

/* One vision input of the run: where its encoder input comes from and where its embedding rows go. */
typedef struct {
    qv_media *media;         /* producer 1: the decoded file (NULL once run, or with --pixel-values) */
    qv_pv_source pv;         /* producer 2: its rows of the --pixel-values file */
    int64_t row;             /* first row of its embeddings in run.embd */
} run_input;

/* Everything one run holds between its phases; run_free releases it (res is the caller's). */
typedef struct {
    qv_engine *e;
    qv_gen_opts go;
    qv_media_opts mo;
    qv_result *res;
    qv_err *err;
    int D;
    qv_prompt_seg *segs;
    int n_segs;
    run_input *in;           /* [res->n_vision], prompt order */
    qv_pv_file *pv;          /* --pixel-values file, or NULL */
    int (*grids[2])[3];      /* per kind (0 images, 1 videos) in prompt order: (t, gh, gw) */
    int n_kind[2];
    float *embd;             /* [n_vision_tokens][D], prompt order; freed after prefill */
    float *logits;           /* [vocab] of the last prefilled / decoded token */
    int64_t prefill_start;   /* first prompt token to prefill (0; > 0 when the KV cache holds a prefix) */
    const int64_t *cuts;     /* extra chunk ends for the prefill (qv_lm_prefill_opts.cuts) */
    int n_cuts;
    /* encoding one input (on_pair) */
    int item;
    qv_status pair_st;
    qv_err pair_err;
} qv_run;

static void run_free(qv_run *r) {
    for (int i = 0; r->in && i < r->res->n_vision; i++) qv_media_free(r->in[i].media);
    free(r->in);
    qv_pv_free(r->pv);
    free(r->grids[0]);
    free(r->grids[1]);
    free(r->embd);
    free(r->logits);
    qv_prompt_segs_free(r->segs, r->n_segs);
    if (!r->res->text) r->res->text = strdup("");
}

/* Keeps layer dumps only when asked (the golden names "vision.*", "lm.layer.*" are the layer ones). */
static void dump_filter(void *user, const char *name, const float *data, int64_t rows, int64_t cols) {
    const qv_gen_opts *go = user;
    if (!go->dump_layers && (strncmp(name, "vision.", 7) == 0 || strncmp(name, "lm.layer.", 9) == 0)) return;
    go->dump(go->dump_user, name, data, rows, cols);
}

static void progress(const qv_gen_opts *go, const char *stage, long done, long total) {
    if (go->on_progress) go->on_progress(go->user, stage, done, total);
}

static int aborted(const qv_gen_opts *go) { return go->abort_cb && go->abort_cb(go->user); }

static char *resolve_path(const char *root, const char *p) {
    if (!root || !*root || p[0] == '/') return strdup(p);
    return qv_path_join(root, p);
}

/* -- phase 1: plan the inputs: paths, producers and grids (media opened, nothing decoded yet) -- */

static qv_status plan_input(qv_run *r, const qv_prompt_seg *seg, int i) {
    qv_engine *e = r->e;
    qv_result_vision *v = &r->res->vision[i];
    v->is_video = seg->kind == QV_SEG_VIDEO;
    v->path = resolve_path(r->go.media_root, seg->text);
    r->res->n_vision = i + 1;
    if (!v->path) return qv_errf(r->err, QV_ERR_NOMEM, "out of memory");
    int k = v->is_video, kth = r->n_kind[k]++;
    if (r->pv) {
        if (kth >= qv_pv_n_grids(r->pv, k))
            return qv_errf(r->err, QV_ERR_INVALID, "%s: the prompt has more %s than %s holds grids for",
                           r->go.pixel_values_path, k ? "videos" : "images", k ? "video_grid_thw" : "image_grid_thw");
        const int64_t *g = qv_pv_grid(r->pv, k, kth);
        v->t = (int)g[0], v->gh = (int)g[1], v->gw = (int)g[2];
        r->in[i].pv = qv_pv_source_of(r->pv, k, kth);
    } else {
        if (!qv_file_exists(v->path))
            return qv_errf(r->err, QV_ERR_IO, "%s: no such file (%s in the prompt)", v->path, k ? "video" : "image");
        qv_media_opts o = r->mo;
        o.force_image = !v->is_video;
        if (!o.pool) o.pool = e->pool;
        if (!o.n_threads) o.n_threads = e->p.n_threads; /* --threads reaches the decoder too */
        if (!o.abort_cb) o.abort_cb = r->go.abort_cb, o.abort_user = r->go.user;
        double t0 = qv_now();
        qv_status st = qv_media_open(&r->in[i].media, v->path, &o, r->err);
        r->res->t_decode_media += qv_now() - t0;
        if (st) {
            if (r->err && !strstr(r->err->msg, v->path)) qv_err_prefix(r->err, "%s", v->path);
            return st;
        }
        const qv_media_info *mi = qv_media_get_info(r->in[i].media);
        v->t = mi->t, v->gh = mi->gh, v->gw = mi->gw;
        v->n_frames = mi->n_frames;
        v->duration_s = mi->duration_s;
        if (mi->n_frames > 0 && mi->pts_ms) v->first_ms = mi->pts_ms[0], v->last_ms = mi->pts_ms[mi->n_frames - 1];
    }
    const int merge = e->ck->cfg.vision.spatial_merge_size > 0 ? e->ck->cfg.vision.spatial_merge_size : 2;
    if (v->t < 1 || v->gh < merge || v->gw < merge || v->gh % merge || v->gw % merge)
        return qv_errf(r->err, QV_ERR_FORMAT, "%s: unusable grid %dx%dx%d", v->path, v->t, v->gh, v->gw);
    int *g = r->grids[k][kth];
    g[0] = v->t, g[1] = v->gh, g[2] = v->gw;
    v->n_tokens = (int64_t)v->t * (v->gh / merge) * (v->gw / merge);
    return QV_OK;
}

static qv_status plan_inputs(qv_run *r, const char *prompt_raw) {
    qv_status st = qv_prompt_parse(prompt_raw, &r->segs, &r->n_segs, r->err);
    if (st) return st;
    int nv = 0;
    for (int s = 0; s < r->n_segs; s++) nv += r->segs[s].kind != QV_SEG_TEXT;
    r->res->vision = calloc((size_t)nv + 1, sizeof *r->res->vision);
    r->in = calloc((size_t)nv + 1, sizeof *r->in);
    r->grids[0] = calloc((size_t)nv + 1, sizeof *r->grids[0]);
    r->grids[1] = calloc((size_t)nv + 1, sizeof *r->grids[1]);
    if (!r->res->vision || !r->in || !r->grids[0] || !r->grids[1]) return qv_errf(r->err, QV_ERR_NOMEM, "out of memory");
    if (r->go.pixel_values_path &&
        (st = qv_pv_open(&r->pv, r->go.pixel_values_path, qv_vision_patch_dim(r->e->vis), r->err)))
        return st;
    for (int s = 0, i = 0; s < r->n_segs; s++)
        if (r->segs[s].kind != QV_SEG_TEXT && (st = plan_input(r, &r->segs[s], i++))) return st;
    int pv_img = qv_pv_n_grids(r->pv, 0), pv_vid = qv_pv_n_grids(r->pv, 1);
    if (r->pv && (r->n_kind[0] != pv_img || r->n_kind[1] != pv_vid))
        return qv_errf(r->err, QV_ERR_INVALID, "%s holds %d image and %d video grids, the prompt has %d images and %d "
                       "videos", r->go.pixel_values_path, pv_img, pv_vid, r->n_kind[0], r->n_kind[1]);
    return QV_OK;
}

/* -- phase 2: tokenize and place: ids with the pads expanded, M-RoPE positions for the whole prompt -- */

static qv_status tokenize_and_place(qv_run *r) {
    qv_engine *e = r->e;
    qv_result *res = r->res;
    qv_err *err = r->err;
    int64_t *n_tok = calloc((size_t)res->n_vision + 1, sizeof *n_tok);
    int64_t *pad_off = calloc((size_t)res->n_vision + 1, sizeof *pad_off);
    qv_status st = !n_tok || !pad_off ? qv_errf(err, QV_ERR_NOMEM, "out of memory") : QV_OK;
    for (int i = 0; !st && i < res->n_vision; i++) n_tok[i] = res->vision[i].n_tokens;
    if (!st) st = qv_prompt_tokenize(e->tok, r->segs, r->n_segs, &e->vids, n_tok, &res->prompt_ids, &res->n_prompt,
                                     pad_off, err);
    for (int i = 0; !st && i < res->n_vision; i++) res->vision[i].pad_offset = pad_off[i];
    free(pad_off);
    free(n_tok);
    if (st) return st;
    const int64_t n = res->n_prompt;
    if (n < 1) return qv_errf(err, QV_ERR_INVALID, "the prompt has no tokens");
    if (n + r->go.max_tokens > (int64_t)1 << 30 || (e->p.n_ctx_max > 0 && n + r->go.max_tokens > e->p.n_ctx_max))
        return qv_errf(err, QV_ERR_NOMEM, "the prompt (%lld tokens) + max_tokens (%d) exceed the context limit %d",
                       (long long)n, r->go.max_tokens, e->p.n_ctx_max > 0 ? e->p.n_ctx_max : 1 << 30);
    int64_t n_vis = 0;
    for (int64_t i = 0; i < n; i++)
        n_vis += res->prompt_ids[i] == e->vids.image_pad || res->prompt_ids[i] == e->vids.video_pad;
    for (int i = 0; i < res->n_vision; i++) {
        r->in[i].row = res->n_vision_tokens;
        res->n_vision_tokens += res->vision[i].n_tokens;
    }
    if (n_vis != res->n_vision_tokens)
        return qv_errf(err, QV_ERR_INVALID, "the prompt text holds <|image_pad|> or <|video_pad|> outside a "
                                            "{{image:}}/{{video:}} marker");
    res->position_ids = malloc((size_t)n * 3 * sizeof *res->position_ids);
    if (!res->position_ids) return qv_errf(err, QV_ERR_NOMEM, "out of memory for %lld positions", (long long)n);
    const int merge = e->ck->cfg.vision.spatial_merge_size > 0 ? e->ck->cfg.vision.spatial_merge_size : 2;
    return qv_mrope_positions(res->prompt_ids, (int)n, (const int(*)[3])r->grids[0], r->n_kind[0],
                              (const int(*)[3])r->grids[1], r->n_kind[1], qv_lm_hparams(e->lm), merge,
                              res->position_ids, &res->rope_delta, err);
}

/* -- phase 3: encode vision: each input's pairs, from its producer, into its rows of embd -- */

static int on_pair(void *user, int k, const float *px, const qv_media_info *info) {
    (void)info;
    qv_run *r = user;
    qv_engine *e = r->e;
    const qv_gen_opts *go = &r->go;
    qv_result_vision *v = &r->res->vision[r->item];
    if (aborted(go)) {
        r->pair_st = qv_errf(&r->pair_err, QV_ERR_CANCELLED, "cancelled");
        return 1;
    }
    int64_t per_pair = (int64_t)v->gh * v->gw;
    if (go->dump)
        go->dump(go->dump_user, v->is_video ? "pixel_values_videos" : "pixel_values", px, per_pair,
                 qv_vision_patch_dim(e->vis));
    double t0 = qv_now();
    float *out = r->embd + (size_t)(r->in[r->item].row + (int64_t)k * (per_pair / 4)) * r->D;
    r->pair_st = qv_vision_encode_pair(e->vctx, e->pool, e->p.prec, px, v->gh, v->gw, out,
                                       go->dump ? dump_filter : NULL, (void *)go, &r->pair_err);
    r->res->t_vision += qv_now() - t0;
    if (!r->pair_st) progress(go, v->is_video ? "video" : "image", k + 1, v->t);
    return r->pair_st != QV_OK;
}

/* Decodes (or reads) and encodes input i: its n_tokens rows of embd from in[i].row on. */
static qv_status encode_input(qv_run *r, int i) {
    qv_result_vision *v = &r->res->vision[i];
    run_input *in = &r->in[i];
    r->item = i;
    r->pair_st = QV_OK;
    double t0 = qv_now(), tv0 = r->res->t_vision;
    qv_status st = in->media ? qv_media_run(in->media, on_pair, NULL, r, r->err) : qv_pv_run(&in->pv, on_pair, r, r->err);
    r->res->t_decode_media += (qv_now() - t0) - (r->res->t_vision - tv0);
    if (r->pair_st) { /* the encoder's error (or the abort), not "stopped by the callback" */
        st = r->pair_st;
        if (r->err) *r->err = r->pair_err;
    }
    if (st && r->err && st != QV_ERR_CANCELLED && !strstr(r->err->msg, v->path)) qv_err_prefix(r->err, "%s", v->path);
    qv_media_free(in->media); /* memory: one input's decoder at a time */
    in->media = NULL;
    return st;
}

static qv_status encode_vision(qv_run *r) {
    qv_result *res = r->res;
    if (res->n_vision_tokens == 0) return QV_OK;
    uint64_t bytes;
    if (!qv_mul_ok((uint64_t)res->n_vision_tokens, (uint64_t)r->D * sizeof(float), &bytes) || bytes > SIZE_MAX ||
        !(r->embd = malloc((size_t)bytes)))
        return qv_errf(r->err, QV_ERR_NOMEM, "out of memory for %lld vision embeddings of %d floats",
                       (long long)res->n_vision_tokens, r->D);
    int maxp = 0;
    for (int i = 0; i < res->n_vision; i++)
        if (res->vision[i].gh * res->vision[i].gw > maxp) maxp = res->vision[i].gh * res->vision[i].gw;
    qv_status st = get_vctx(r->e, maxp, r->err);
    for (int pass = 0; pass < 2; pass++) /* images first, then videos: the reference's order */
        for (int i = 0; !st && i < res->n_vision; i++)
            if (res->vision[i].is_video == pass) st = encode_input(r, i);
    if (st || !r->go.dump) return st;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < res->n_vision; i++)
            if (res->vision[i].is_video == pass)
                r->go.dump(r->go.dump_user, "vision_embeds", r->embd + (size_t)r->in[i].row * r->D,
                           res->vision[i].n_tokens, r->D);
    return QV_OK;
}

/* -- phase 4: prefill the prompt (from prefill_start on) into the KV cache; lm/ cuts the chunks -- */

static void on_prefill(void *user, int64_t done, int64_t total) {
    progress(&((qv_run *)user)->go, "prefill", (long)done, (long)total);
}

static int on_prefill_abort(void *user) { return aborted(&((qv_run *)user)->go); }

static qv_status prefill(qv_run *r) {
    qv_result *res = r->res;
    const int V = qv_lm_hparams(r->e->lm)->vocab;
    if (!(r->logits = malloc((size_t)V * sizeof *r->logits))) return qv_errf(r->err, QV_ERR_NOMEM, "out of memory");
    int64_t skip = 0; /* embedding rows of the tokens already in the cache */
    for (int64_t i = 0; i < r->prefill_start; i++)
        skip += res->prompt_ids[i] == r->e->vids.image_pad || res->prompt_ids[i] == r->e->vids.video_pad;
    qv_lm_prefill_opts po = qv_lm_prefill_default_opts();
    po.start = r->prefill_start;
    po.cuts = r->cuts;
    po.n_cuts = r->n_cuts;
    po.on_progress = on_prefill;
    po.abort_cb = on_prefill_abort;
    po.user = r;
    po.dump = r->go.dump ? dump_filter : NULL;
    po.dump_user = &r->go;
    double t0 = qv_now();
    qv_status st = qv_lm_prefill_seq(r->e->ctx, res->prompt_ids, res->n_prompt,
                                     r->embd ? r->embd + (size_t)skip * r->D : NULL, res->n_vision_tokens - skip,
                                     res->position_ids, res->n_prompt, &po, r->logits, r->err);
    res->t_prefill = qv_now() - t0;
    free(r->embd);
    r->embd = NULL;
    if (!st && r->go.dump) r->go.dump(r->go.dump_user, "logits_last", r->logits, 1, V);
    return st;
}

/* -- phase 5: generate until a stop id, max_tokens or the abort callback -- */

/* the generated text, grown as pieces arrive, each piece also streamed to on_text */
typedef struct {
    char *p;
    size_t n, cap;
    const qv_gen_opts *go;
} text_acc;

static qv_status text_add(text_acc *t, const char *piece, size_t len, qv_err *err) {
    if (!len) return QV_OK;
    if (!qv_grow((void **)&t->p, &t->cap, t->n + len + 1))
        return qv_errf(err, QV_ERR_NOMEM, "out of memory for the generated text");
    memcpy(t->p + t->n, piece, len);
    t->n += len;
    t->p[t->n] = 0;
    if (t->go->on_text) t->go->on_text(t->go->user, piece, len);
    return QV_OK;
}

/* the stop ids of this run: the caller's, or the checkpoint's (+ <|im_end|> for a chat prompt) */
static int stop_ids(const qv_run *r, int32_t stops[24]) {
    const qv_engine *e = r->e;
    int n_stops = 0;
    if (!r->go.use_stop) return 0;
    if (r->go.n_stop > 0) {
        for (int i = 0; i < r->go.n_stop && i < 16; i++) stops[n_stops++] = r->go.stop_ids[i];
        return n_stops;
    }
    const qv_gen_hparams *g = &e->ck->cfg.gen;
    for (int i = 0; i < g->n_eos && i < 8; i++) stops[n_stops++] = g->eos_ids[i];
    if (e->eot_id >= 0) stops[n_stops++] = e->eot_id;
    int chat_prompt = 0;
    for (int64_t i = 0; i < r->res->n_prompt && e->im_start_id >= 0; i++) chat_prompt |= r->res->prompt_ids[i] == e->im_start_id;
    if (chat_prompt && e->im_end_id >= 0) stops[n_stops++] = e->im_end_id;
    return n_stops;
}

static qv_status generate(qv_run *r) {
    qv_result *res = r->res;
    const qv_gen_opts *go = &r->go;
    const int64_t n = res->n_prompt;
    int32_t stops[24];
    int n_stops = stop_ids(r, stops);
    int32_t *hist = malloc((size_t)(n + go->max_tokens) * sizeof *hist);
    qv_sampler *smp = NULL;
    qv_tok_stream *ts = NULL;
    res->gen_ids = malloc((size_t)go->max_tokens * sizeof *res->gen_ids + 1);
    qv_status st = !hist || !res->gen_ids ? qv_errf(r->err, QV_ERR_NOMEM, "out of memory")
                                          : qv_sampler_create(&smp, &go->sampling, qv_lm_hparams(r->e->lm)->vocab, r->err);
    if (!st && !(ts = qv_tok_stream_create(r->e->tok, 1))) st = qv_errf(r->err, QV_ERR_NOMEM, "out of memory");
    if (st) goto out;
    memcpy(hist, res->prompt_ids, (size_t)n * sizeof *hist);
    double t0 = qv_now();
    text_acc ta = {NULL, 0, 0, go};
    char piece[1100];
    for (int k = 0; k < go->max_tokens; k++) {
        if (aborted(go)) {
            st = qv_errf(r->err, QV_ERR_CANCELLED, "cancelled");
            break;
        }
        int32_t id = qv_sample(smp, r->logits, hist, (int)(n + k));
        hist[n + k] = id;
        res->gen_ids[res->n_gen++] = id;
        int stop = 0;
        for (int i = 0; i < n_stops; i++) stop |= stops[i] == id;
        if (stop) {
            res->stopped = 1;
            break;
        }
        if ((st = text_add(&ta, piece, qv_tok_stream_push(ts, id, piece, sizeof piece), r->err))) break;
        progress(go, "generate", k + 1, go->max_tokens);
        if (k + 1 < go->max_tokens && (st = qv_lm_decode(r->e->ctx, id, n + k + res->rope_delta, r->logits, r->err)))
            break;
    }
    qv_status st2 = text_add(&ta, piece, qv_tok_stream_flush(ts, piece, sizeof piece), r->err);
    if (!st) st = st2;
    res->text = ta.p;
    res->t_generate = qv_now() - t0;
    if (!st && res->stopped) progress(go, "generate", res->n_gen, res->n_gen);
out:
    qv_tok_stream_free(ts);
    qv_sampler_free(smp);
    free(hist);
    return st;
}

/* The phases in order (engine.h); each reads what the earlier ones left in the run. */
qv_status qv_engine_run_raw(qv_engine *e, const char *prompt_raw, const qv_media_opts *mo, const qv_gen_opts *go,
                            qv_result *res, qv_err *err) {
    memset(res, 0, sizeof *res);
    qv_run r = {.e = e, .res = res, .err = err, .D = qv_lm_hparams(e->lm)->hidden};
    r.go = go ? *go : qv_engine_default_gen_opts(e);
    r.mo = mo ? *mo : qv_media_default_opts();
    if (r.go.max_tokens < 0) return qv_errf(err, QV_ERR_INVALID, "max_tokens is negative");
    if (!prompt_raw || !*prompt_raw) return qv_errf(err, QV_ERR_INVALID, "the prompt is empty");
    qv_status st = plan_inputs(&r, prompt_raw);
    if (!st) st = tokenize_and_place(&r);
    if (!st) st = get_ctx(e, (int)(res->n_prompt + r.go.max_tokens), err); /* refused before any decoding */
    if (!st) st = encode_vision(&r);
    if (!st) st = prefill(&r);
    if (!st) st = generate(&r);
    run_free(&r);
    return st;
}
