/* config.h — the model's hyper-parameters from config.json (legacy flat form as released, or the nested
 * text_config/vision_config form newer transformers write), generation_config.json and
 * preprocessor_config.json. Missing optional fields take the reference defaults.
 *
 *   qv_model_config mc; qv_err err;
 *   if (qv_config_load_dir(&mc, "models/tiny-qwen2vl", &err)) ...
 */
#ifndef QV_CONFIG_H
#define QV_CONFIG_H

#include "core.h"

/* The one vision geometry qv handles (the front end in vision/preprocess.c is written for it); a checkpoint
 * declaring another is refused at load. */
#define QV_PATCH          14
#define QV_MERGE          2
#define QV_TEMPORAL_PATCH 2

typedef struct {
    int depth;               /* number of vision blocks (32 in 7B) */
    int embed_dim;           /* E (1280) */
    int mlp_dim;             /* M = embed_dim * mlp_ratio (5120) */
    int n_heads;             /* 16 */
    int head_dim;            /* E / n_heads (80) */
    int in_chans;            /* 3 */
    int out_hidden;          /* vision_config.hidden_size = text hidden D (3584) */
    int patch_size;          /* 14 */
    int spatial_merge_size;  /* 2 */
    int temporal_patch_size; /* 2 */
} qv_vision_hparams;

typedef struct {
    int hidden;              /* D (3584) */
    int ffn;                 /* F intermediate_size (18944) */
    int n_layers;            /* 28 */
    int n_heads;             /* 28 */
    int n_kv_heads;          /* 4 */
    int head_dim;            /* D / n_heads (128) */
    int vocab;               /* 152064 */
    int max_pos;             /* max_position_embeddings: bounds position values, not token counts */
    float rms_eps;           /* 1e-6 */
    double rope_theta;       /* 1e6 */
    int mrope_section[3];    /* [16,24,24]: frequencies per (t,h,w), sums to head_dim/2 */
    int tie_embeddings;      /* the output projection is the input embedding */
    int bos_id, eos_id;      /* from config.json (eos may also come from generation config) */
    int vision_start_id, vision_end_id, vision_token_id, image_token_id, video_token_id;
} qv_text_hparams;

typedef struct {
    int eos_ids[8];          /* stop ids, from generation_config.json (int or list) */
    int n_eos;
    int bos_id;
    int max_new_tokens;      /* default 2048 */
    int do_sample;
    float temperature;       /* 1.0 */
    int top_k;               /* 0 = off */
    float top_p;             /* 1.0 = off */
    float repetition_penalty;/* 1.0 = off */
} qv_gen_hparams;

typedef struct {
    int min_pixels;          /* 3136 */
    int max_pixels;          /* 12845056 */
    int patch_size;          /* 14 */
    int temporal_patch_size; /* 2 */
    int merge_size;          /* 2 */
    float mean[3], std[3];
} qv_preproc_hparams;

typedef struct {
    qv_text_hparams text;
    qv_vision_hparams vision;
    qv_gen_hparams gen;
    qv_preproc_hparams pre;
    int nested_layout;       /* 1 when config.json had text_config (informational) */
} qv_model_config;

/* Parses config.json text (json, len) into mc->text and mc->vision; checks every number for sanity. */
qv_status qv_config_parse(qv_model_config *mc, const char *json, size_t len, const char *what, qv_err *err);
/* Loads config.json (required) and generation_config.json / preprocessor_config.json (optional,
 * defaults otherwise) from dir. */
qv_status qv_config_load_dir(qv_model_config *mc, const char *dir, qv_err *err);
void qv_config_defaults(qv_model_config *mc);

#endif
