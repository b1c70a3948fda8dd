/* engine.c — where the layers meet (engine.h): the engine object, and one run as five phases over one run
 * struct (qv_run): plan inputs -> tokenize and place -> encode vision -> prefill -> generate, each a static
 * function reading what the earlier ones left. The caches (pipeline/engine_cache.h, issue 11): plan_input()
 * keys each input and takes its grid from a vision entry when there is one (nothing opened); kv_and_prefix()
 * makes the KV cache and puts the stored prefix in it (memory, else the cache folder), then prefill starts
 * after it and encode_vision() has nothing to do; encode_input() fills a cached input's rows from its entry
 * and stores an encoded one's; the prefill's progress callback stores the prefix when the cut at its end
 * is reached.
 * Reference: spec sections 6-8 (positions computed once for the whole prompt, chunks slice embeddings and
 * the three position rows at the same offset). The dumps follow fixtures/golden/<case>.safetensors. */
#include "engine.h"
#include "qstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "checkpoint.h"
#include "engine_cache.h"
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
    qv_ec *ec;               /* the caches: folder (optional), model identity, the prefix held in ctx */
    qv_qmap qmap;            /* stored quantized weights the model maps (--q8, --q4), or none */
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
    e->p.cache_dir = NULL; /* the caller's string: not kept */
    if (!(e->ec = qv_ec_create(e->ck, p->cache_dir, p->cache_max))) {
        st = qv_errf(err, QV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (p->quant != QV_QUANT_NONE) {   /* mapped from the cache folder when stored there (qstore.h) */
        const char *how;
        double tq = qv_now();
        if ((st = qv_qstore_apply(e->lm, p->quant, e->ec, e->pool, &e->qmap, &how, err))) goto fail;
        qv_log(2, "%s weights %s in %.2f s", p->quant == QV_QUANT_Q4 ? "4-bit" : "8-bit", how, qv_now() - tq);
    }
    e->t_load = qv_now() - t0;
    *out = e;
    return QV_OK;
fail:
    qv_engine_free(e);
    return st;
}

void qv_engine_free(qv_engine *e) {
    if (!e) return;
    qv_ec_free(e->ec);
    qv_lm_ctx_free(e->ctx);
    qv_vision_ctx_free(e->vctx);
    qv_lm_free(e->lm);
    qv_qstore_unmap(&e->qmap);   /* after the model that points into it */
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
    qv_ec_mem_set(e->ec, NULL, 0); /* whatever prefix it held is gone */
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
    char *vkey;              /* its vision-cache key (NULL with --pixel-values) */
    qv_ec_vmeta vm;          /* its vision-cache entry (vm.n_tokens 0: none; then media is open) */
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
    int64_t P;               /* end of the reusable prefix (after the last vision block; 0 = none): a cut */
    char *pkey;              /* its KV-cache key (NULL: not cacheable) */
    /* encoding one input (on_pair) */
    int item;
    qv_status pair_st;
    qv_err pair_err;
} qv_run;

static void run_free(qv_run *r) {
    for (int i = 0; r->in && i < r->res->n_vision; i++) qv_media_free(r->in[i].media), free(r->in[i].vkey);
    free(r->pkey);
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

/* Opens input i's file for decoding (grid known, nothing decoded yet). */
static qv_status open_media(qv_run *r, int i) {
    qv_engine *e = r->e;
    qv_result_vision *v = &r->res->vision[i];
    qv_media_opts o = r->mo;
    o.force_image = !v->is_video;
    if (!o.pool) o.pool = e->pool;
    if (!o.n_threads) o.n_threads = e->p.n_threads; /* --threads reaches the decoder too */
    if (!o.abort_cb) o.abort_cb = r->go.abort_cb, o.abort_user = r->go.user;
    double t0 = qv_now();
    qv_status st = qv_media_open(&r->in[i].media, v->path, &o, r->err);
    r->res->t_decode_media += qv_now() - t0;
    if (st && r->err && !strstr(r->err->msg, v->path)) qv_err_prefix(r->err, "%s", v->path);
    return st;
}

static qv_status plan_input(qv_run *r, const qv_prompt_seg *seg, int i) {
    qv_engine *e = r->e;
    const int merge = e->ck->cfg.vision.spatial_merge_size > 0 ? e->ck->cfg.vision.spatial_merge_size : 2;
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
        /* the vision cache: a hit gives the grid (rows later, in encode_input), nothing is decoded */
        run_input *in = &r->in[i];
        if (!(in->vkey = qv_ec_vision_key_for(e->ec, v->path, v->is_video, &r->mo, e->p.prec, r->err)))
            return r->err && r->err->code ? r->err->code : QV_ERR_NOMEM;
        qv_ec_vmeta vm;
        if (!r->go.dump && qv_ec_vision_peek(e->ec, in->vkey, r->D, &vm) && vm.gh % merge == 0 && vm.gw % merge == 0 &&
            vm.n_tokens == (int64_t)vm.t * (vm.gh / merge) * (vm.gw / merge)) {
            in->vm = vm;
            v->t = vm.t, v->gh = vm.gh, v->gw = vm.gw, v->n_frames = vm.n_frames;
            v->first_ms = vm.first_ms, v->last_ms = vm.last_ms, v->duration_s = vm.duration_s;
            r->res->n_vision_cached++;
            qv_log(2, "cache: vision of %s (%lld tokens) from the cache", v->path, (long long)vm.n_tokens);
        } else {
            qv_status st = open_media(r, i);
            if (st) return st;
            const qv_media_info *mi = qv_media_get_info(in->media);
            v->t = mi->t, v->gh = mi->gh, v->gw = mi->gw;
            v->n_frames = mi->n_frames;
            v->duration_s = mi->duration_s;
            if (mi->n_frames > 0 && mi->pts_ms) v->first_ms = mi->pts_ms[0], v->last_ms = mi->pts_ms[mi->n_frames - 1];
        }
    }
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
    qv_status st2 = qv_mrope_positions(res->prompt_ids, (int)n, (const int(*)[3])r->grids[0], r->n_kind[0],
                                       (const int(*)[3])r->grids[1], r->n_kind[1], qv_lm_hparams(e->lm), merge,
                                       res->position_ids, &res->rope_delta, err);
    if (st2) return st2;
    /* positions beyond what the model was trained for: refused (a 10 MB question would be hours of
     * prefill for noise) unless --ctx-max (n_ctx_max) raises the bound */
    const int64_t need = n + res->rope_delta + r->go.max_tokens, max_pos = e->ck->cfg.text.max_pos;
    const int64_t limit = e->p.n_ctx_max > 0 ? e->p.n_ctx_max : max_pos;
    if (need > limit)
        return qv_errf(err, QV_ERR_INVALID,
                       "the prompt (%lld tokens, positions up to %lld) + max_tokens (%d) needs %lld positions, more than %s %lld "
                       "(raise it with --ctx-max)",
                       (long long)n, (long long)(n + res->rope_delta - 1), r->go.max_tokens, (long long)need,
                       e->p.n_ctx_max > 0 ? "the --ctx-max of" : "the model's max_position_embeddings", (long long)limit);
    return QV_OK;
}

/* -- phase 2b: the KV cache (refused early when it would not fit), holding the stored prefix when this prompt
 * has it (from memory, else from the cache folder): then prefill starts after it and no vision is encoded.
 * Every run, reused or not, cuts a prefill chunk at the prefix end P so that both compute the same chunks. -- */

static qv_status kv_and_prefix(qv_run *r) {
    qv_engine *e = r->e;
    qv_result *res = r->res;
    const int64_t n = res->n_prompt;
    const int need = (int)(n + r->go.max_tokens);
    r->P = qv_ec_prefix_end(res->prompt_ids, n, e->vids.image_pad, e->vids.video_pad, e->vids.vision_end);
    if (r->P > 0) r->cuts = &r->P, r->n_cuts = 1;
    int keyed = r->P > 0 && !r->pv;
    for (int i = 0; keyed && i < res->n_vision; i++) keyed = r->in[i].vkey != NULL;
    if (keyed) {
        char **vk = calloc((size_t)res->n_vision + 1, sizeof *vk);
        if (!vk) return qv_errf(r->err, QV_ERR_NOMEM, "out of memory");
        for (int i = 0; i < res->n_vision; i++) vk[i] = r->in[i].vkey;
        r->pkey = qv_ec_kv_key_for(e->ec, e->p.prec, e->p.quant, e->p.chunk, res->prompt_ids, res->position_ids, n,
                                   r->P, vk, res->n_vision);
        free(vk);
        if (!r->pkey) return qv_errf(r->err, QV_ERR_NOMEM, "out of memory");
    }
    qv_status st = QV_OK;
    void *buf = NULL;
    int64_t reused = 0;
    if (r->pkey && !r->go.dump && e->ctx && qv_ec_mem_match(e->ec, r->pkey) == r->P && qv_lm_n_past(e->ctx) >= r->P) {
        if (e->ctx_n >= need) qv_lm_ctx_truncate(e->ctx, (int)r->P);
        else { /* a bigger cache: carry the prefix over */
            uint64_t kb = qv_lm_kv_bytes(e->ctx, (int)r->P);
            if (!(buf = malloc(kb ? kb : 1))) return qv_errf(r->err, QV_ERR_NOMEM, "out of memory");
            qv_lm_kv_export(e->ctx, (int)r->P, buf, NULL);
            if (!(st = get_ctx(e, need, r->err))) st = qv_lm_kv_import(e->ctx, (int)r->P, buf, r->err);
        }
        reused = st ? 0 : r->P;
    } else {
        st = get_ctx(e, need, r->err);
        if (!st && r->pkey && !r->go.dump && qv_ec_kv_get(e->ec, r->pkey, e->ctx, r->P)) {
            reused = r->P;
            res->prefix_from_disk = 1;
        }
    }
    free(buf);
    if (st) return st;
    if (reused) {
        qv_ec_mem_set(e->ec, r->pkey, r->P);
        qv_log(2, "cache: prompt prefix of %lld tokens from %s", (long long)r->P,
               res->prefix_from_disk ? "the cache folder" : "memory");
        for (int i = 0; i < res->n_vision; i++) { /* not decoded after all */
            qv_media_free(r->in[i].media);
            r->in[i].media = NULL;
        }
    } else res->prefix_from_disk = 0;
    r->prefill_start = reused;
    res->n_prefix_reused = reused;
    return QV_OK;
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
    if (in->vm.n_tokens) { /* from the vision cache; a payload gone bad since the peek: decode after all */
        float *rows = NULL;
        if (qv_ec_vision_get(r->e->ec, in->vkey, &in->vm, &rows)) {
            memcpy(r->embd + (size_t)in->row * r->D, rows, (size_t)v->n_tokens * r->D * sizeof *rows);
            free(rows);
            return QV_OK;
        }
        r->res->n_vision_cached--;
        in->vm.n_tokens = 0;
        qv_status st = open_media(r, i);
        if (st) return st;
        const qv_media_info *mi = qv_media_get_info(in->media);
        if (mi->t != v->t || mi->gh != v->gh || mi->gw != v->gw)
            return qv_errf(r->err, QV_ERR_IO, "%s: changed while in use", v->path);
    }
    double t0 = qv_now(), tv0 = r->res->t_vision;
    qv_status st = in->media ? qv_media_run(in->media, on_pair, NULL, r, r->err) : qv_pv_run(&in->pv, on_pair, r, r->err);
    r->res->t_decode_media += (qv_now() - t0) - (r->res->t_vision - tv0);
    if (r->pair_st) { /* the encoder's error (or the abort), not "stopped by the callback" */
        st = r->pair_st;
        if (r->err) *r->err = r->pair_err;
    }
    if (st && r->err && st != QV_ERR_CANCELLED && !strstr(r->err->msg, v->path)) qv_err_prefix(r->err, "%s", v->path);
    if (!st && in->media) {
        const qv_ec_vmeta vm = {v->t, v->gh, v->gw, v->n_frames, v->first_ms, v->last_ms, v->duration_s, v->n_tokens, r->D};
        qv_ec_vision_put(r->e->ec, in->vkey, v->path, &vm, r->embd + (size_t)in->row * r->D);
    }
    qv_media_free(in->media); /* memory: one input's decoder at a time */
    in->media = NULL;
    return st;
}

static qv_status encode_vision(qv_run *r) {
    qv_result *res = r->res;
    if (res->n_vision_tokens == 0 || r->prefill_start > 0) return QV_OK; /* a reused prefix holds every block */
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

/* The prefix's KV into the cache folder (and remembered in memory) once the prefill has reached P. */
static void save_prefix(qv_run *r) {
    qv_engine *e = r->e;
    qv_ec_mem_set(e->ec, r->pkey, r->P);
    if (!qv_ec_has_disk(e->ec) || qv_ec_kv_has(e->ec, r->pkey)) return;
    char desc[1500];
    int dn = snprintf(desc, sizeof desc, "prefix of");
    for (int i = 0; i < r->res->n_vision && dn < 1000; i++)
        dn += snprintf(desc + dn, sizeof desc - (size_t)dn, " %.400s", r->res->vision[i].path);
    snprintf(desc + dn, sizeof desc - (size_t)dn, " | model %.300s | %lld tokens, %s, chunk %d%s", e->model_dir,
             (long long)r->P, e->p.prec == QV_PREC_REF ? "ref" : "fast", e->p.chunk,
             e->p.quant == QV_QUANT_Q8 ? ", q8" : e->p.quant == QV_QUANT_Q4 ? ", q4" : "");
    qv_ec_kv_put(e->ec, r->pkey, desc, e->ctx, r->P);
}

static void on_prefill(void *user, int64_t done, int64_t total) {
    qv_run *r = user;
    if (done == r->P && r->pkey && r->prefill_start < r->P) save_prefix(r);
    progress(&r->go, "prefill", (long)done, (long)total);
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
    if (!st && r->go.logits_last) memcpy(r->go.logits_last, r->logits, (size_t)V * sizeof *r->logits);
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
        /* a token longer than piece[] (tokenizer.json may hold any) comes out over several takes */
        for (size_t got = qv_tok_stream_push(ts, id, piece, sizeof piece); got && !st; got = qv_tok_stream_take(ts, piece, sizeof piece))
            st = text_add(&ta, piece, got, r->err);
        if (st) break;
        progress(go, "generate", k + 1, go->max_tokens);
        if (k + 1 < go->max_tokens && (st = qv_lm_decode(r->e->ctx, id, n + k + res->rope_delta, r->logits, r->err)))
            break;
    }
    qv_status st2 = QV_OK;
    for (size_t got = qv_tok_stream_flush(ts, piece, sizeof piece); got && !st2; got = qv_tok_stream_take(ts, piece, sizeof piece))
        st2 = text_add(&ta, piece, got, r->err);
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
    if (!st) st = kv_and_prefix(&r); /* refused before any decoding */
    if (!st) st = encode_vision(&r);
    if (!st) st = prefill(&r);
    if (!st) st = generate(&r);
    run_free(&r);
    return st;
}
