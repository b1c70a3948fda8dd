/* cmd_info.c — qv info: validate a model folder and print what it holds (or the one-line error). */
#include "checkpoint.h"
#include "model.h"
#include "cli.h"
#include "tokenizer.h"

#include <string.h>

static void help(void) {
    puts("usage: qv info [--model DIR] [--json]\n"
         "\n"
         "Loads a Qwen2-VL checkpoint folder (config.json, safetensors shards with their index,\n"
         "generation/preprocessor configs), checks every tensor the config implies (present, shape,\n"
         "bf16), loads the tokenizer as qv ask does (its special tokens must match config.json), and\n"
         "prints the architecture, tensor count, bytes by dtype and the shards.\n"
         "Exit status 0 when the folder is usable, 1 with a one-line reason otherwise.\n"
         "\n"
         "examples:\n"
         "  qv info --model ~/models/Qwen2-VL-7B\n"
         "  QV_MODEL=~/models/Qwen2-VL-7B qv info --json");
}

int qv_cmd_info(int argc, char **argv) {
    const char *model = cli_default_model();
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { help(); return 0; }
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] != '-' && !model) model = argv[i];
        else return cli_unknown_option("info", argv[i]);
    }
    if (!model) return cli_usage("info", "no model: give --model DIR or set QV_MODEL");
    qv_ckpt *ck;
    qv_err err = {0};
    if (qv_model_open(&ck, model, &err)) return cli_fail("%s", err.msg);
    const qv_text_hparams *t = &ck->cfg.text;
    const qv_vision_hparams *v = &ck->cfg.vision;
    /* the tokenizer, as `qv ask` loads it: a folder without a usable one is not a usable model */
    qv_tokenizer *tok = NULL;
    if (qv_tok_load(&tok, model, &err)) {
        qv_ckpt_free(ck);
        return cli_fail("%s", err.msg);
    }
    int tok_vocab = qv_tok_vocab_size(tok);
    const struct { const char *s; int32_t id; } want[] = {{"<|vision_start|>", t->vision_start_id},
                                                          {"<|vision_end|>", t->vision_end_id},
                                                          {"<|image_pad|>", t->image_token_id},
                                                          {"<|video_pad|>", t->video_token_id}};
    const char *bad = NULL;
    int got = -1;
    for (int i = 0; i < 4 && !bad; i++)
        if ((got = qv_tok_id(tok, want[i].s, strlen(want[i].s))) != want[i].id) bad = want[i].s;
    qv_tok_free(tok);
    if (bad) {
        int want_id = 0;
        for (int i = 0; i < 4; i++) if (want[i].s == bad) want_id = want[i].id;
        qv_ckpt_free(ck);
        return got < 0 ? cli_fail("%s: the tokenizer has no %s token (config.json uses id %d)", model, bad, want_id)
                       : cli_fail("%s: the tokenizer has %s = %d but config.json says %d", model, bad, got, want_id);
    }
    if (tok_vocab > t->vocab) {
        qv_ckpt_free(ck);
        return cli_fail("%s: the tokenizer has ids up to %d but the model's vocabulary is %d", model, tok_vocab - 1, t->vocab);
    }
    uint64_t by_dtype[QV_DTYPE_COUNT] = {0}, params = 0;
    int n = qv_st_count(ck->st);
    for (int i = 0; i < n; i++) {
        const qv_tensor *x = qv_st_at(ck->st, i);
        by_dtype[x->dtype] += x->nbytes;
        params += (uint64_t)qv_tensor_numel(x);
    }
    if (json) {
        printf("{\"model\": \"%s\", \"tensors\": %d, \"parameters\": %llu, \"shards\": %d, \"layout\": \"%s\", "
               "\"text\": {\"hidden\": %d, \"layers\": %d, \"heads\": %d, \"kv_heads\": %d, \"ffn\": %d, \"vocab\": %d, "
               "\"mrope_section\": [%d, %d, %d], \"tie_embeddings\": %s}, "
               "\"tokenizer_ids\": %d, \"vision\": {\"depth\": %d, \"embed_dim\": %d, \"heads\": %d, \"mlp\": %d, \"patch\": %d, \"merge\": %d}, \"bytes\": {",
               model, n, (unsigned long long)params, qv_st_n_shards(ck->st), ck->new_layout ? "model.language_model" : "released",
               t->hidden, t->n_layers, t->n_heads, t->n_kv_heads, t->ffn, t->vocab, t->mrope_section[0], t->mrope_section[1],
               t->mrope_section[2], t->tie_embeddings ? "true" : "false", tok_vocab, v->depth, v->embed_dim, v->n_heads, v->mlp_dim,
               v->patch_size, v->spatial_merge_size);
        int first = 1;
        for (int d = 0; d < QV_DTYPE_COUNT; d++)
            if (by_dtype[d]) {
                printf("%s\"%s\": %llu", first ? "" : ", ", qv_dtype_name((qv_dtype)d), (unsigned long long)by_dtype[d]);
                first = 0;
            }
        printf("}}\n");
    } else {
        printf("model        %s (%s tensor names)\n", model, ck->new_layout ? "re-saved model.language_model.*" : "released");
        printf("language     hidden %d, %d layers, %d heads of %d (%d KV heads), ffn %d, vocab %d, mrope [%d,%d,%d], theta %g%s\n",
               t->hidden, t->n_layers, t->n_heads, t->head_dim, t->n_kv_heads, t->ffn, t->vocab, t->mrope_section[0],
               t->mrope_section[1], t->mrope_section[2], t->rope_theta, t->tie_embeddings ? ", tied embeddings" : "");
        printf("vision       embed %d, depth %d, %d heads, mlp %d, patch %d, temporal %d, merge %d\n", v->embed_dim, v->depth,
               v->n_heads, v->mlp_dim, v->patch_size, v->temporal_patch_size, v->spatial_merge_size);
        printf("tokens       bos %d, eos", ck->cfg.gen.bos_id);
        for (int i = 0; i < ck->cfg.gen.n_eos; i++) printf(" %d", ck->cfg.gen.eos_ids[i]);
        printf(", vision_start %d, image_pad %d, video_pad %d\n", t->vision_start_id, t->image_token_id, t->video_token_id);
        printf("tokenizer    %d ids\n", tok_vocab);
        printf("tensors      %d, %.3f G parameters\n", n, params / 1e9);
        for (int d = 0; d < QV_DTYPE_COUNT; d++)
            if (by_dtype[d]) printf("bytes        %-5s %llu (%.2f GB)\n", qv_dtype_name((qv_dtype)d), (unsigned long long)by_dtype[d], by_dtype[d] / 1e9);
        for (int s = 0; s < qv_st_n_shards(ck->st); s++) printf("shard        %s\n", qv_st_shard_path(ck->st, s));
    }
    qv_ckpt_free(ck);
    return 0;
}
