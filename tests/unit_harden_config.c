/* unit_harden_config.c — hostile config files (issue 12, findings 1 and 3): every numeric field of
 * config.json, generation_config.json and preprocessor_config.json refuses true/false and other
 * wrong JSON types with a message naming the file and key, and a vision geometry the front end cannot
 * follow (patch 14, temporal 2, 3 channels, merge 2) is refused at load. */
#include "test.h"
#include "config.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *k_flat =
    "{\"model_type\":\"qwen2_vl\",\"hidden_size\":32,\"intermediate_size\":96,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":300,\"tie_word_embeddings\":true,"
    "\"max_position_embeddings\":4096,\"bos_token_id\":1,\"eos_token_id\":2,\"vision_start_token_id\":3,"
    "\"vision_end_token_id\":4,\"vision_token_id\":5,\"image_token_id\":6,\"video_token_id\":7,"
    "\"rms_norm_eps\":1e-6,\"rope_theta\":1000000.0,\"rope_scaling\":{\"type\":\"mrope\",\"mrope_section\":[2,3,3]},"
    "\"vision_config\":{\"depth\":1,\"embed_dim\":32,\"mlp_ratio\":4,\"num_heads\":2,\"in_chans\":3,\"hidden_size\":32,"
    "\"patch_size\":14,\"spatial_merge_size\":2,\"temporal_patch_size\":2}}";

static int parse(const char *json, qv_err *e) {
    qv_model_config c;
    qv_config_defaults(&c);
    return qv_config_parse(&c, json, strlen(json), "config.json", e);
}

/* Every number in obj, in turn, replaced by each of false, true, "7", [7]: the parse must refuse it. */
static void each_number_retyped(cJSON *root, cJSON *obj, const char *where) {
    for (cJSON *it = obj->child; it; it = it->next) {
        if (cJSON_IsObject(it)) { each_number_retyped(root, it, it->string); continue; }
        if (!cJSON_IsNumber(it)) continue;
        double keep = it->valuedouble;
        char key[64];
        snprintf(key, sizeof key, "%s", it->string);
        for (int kind = 0; kind < 4; kind++) {
            cJSON *with = kind == 0 ? cJSON_CreateFalse() : kind == 1 ? cJSON_CreateTrue()
                        : kind == 2 ? cJSON_CreateString("7") : cJSON_CreateIntArray((const int[]){7}, 1);
            cJSON_ReplaceItemInObjectCaseSensitive(obj, key, with);
            char *txt = cJSON_PrintUnformatted(root);
            qv_err e = {0};
            int rc = parse(txt, &e);
            CHECK_MSG(rc != QV_OK, "%s.%s retyped accepted: %s", where, key, txt);
            CHECK_MSG(rc == QV_OK || strstr(e.msg, key), "message '%s' does not name %s", e.msg, key);
            free(txt);
            it = cJSON_CreateNumber(keep);
            cJSON_ReplaceItemInObjectCaseSensitive(obj, key, it);
        }
    }
}

static void write_text(const char *dir, const char *name, const char *text) {
    char *p = qv_path_join(dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    free(p);
}

static int load_with(const char *dir, const char *name, const char *text, qv_err *e) {
    write_text(dir, "config.json", k_flat);
    const char *extra[2] = {"generation_config.json", "preprocessor_config.json"};
    for (int i = 0; i < 2; i++) {
        char *p = qv_path_join(dir, extra[i]);
        unlink(p);
        free(p);
    }
    if (name) write_text(dir, name, text);
    qv_model_config c;
    return qv_config_load_dir(&c, dir, e);
}

int main(void) {
    qv_err e = {0};
    CHECK_MSG(parse(k_flat, &e) == QV_OK, "%s", e.msg);
    /* the finding: false in an integer field was read as 0 (num_key_value_heads: SIGFPE later) */
    const char *rep = "\"num_key_value_heads\":1";
    char buf[2048];
    const char *at = strstr(k_flat, rep);
    snprintf(buf, sizeof buf, "%.*s\"num_key_value_heads\":false%s", (int)(at - k_flat), k_flat, at + strlen(rep));
    CHECK(parse(buf, &e) != QV_OK && strstr(e.msg, "num_key_value_heads"));
    /* the class: every number field of config.json */
    cJSON *root = cJSON_Parse(k_flat);
    each_number_retyped(root, root, "config");
    cJSON_Delete(root);
    /* flags take true/false (and 0/1), nothing else */
    const char *flags_ok[] = {"{\"tie_word_embeddings\":false}", "{\"tie_word_embeddings\":1}"};
    for (int i = 0; i < 2; i++) CHECK_MSG(parse(flags_ok[i], &e) == QV_OK, "%s: %s", flags_ok[i], e.msg);
    CHECK(parse("{\"tie_word_embeddings\":2}", &e) != QV_OK);
    CHECK(parse("{\"tie_word_embeddings\":\"yes\"}", &e) != QV_OK);
    /* objects and strings: the wrong JSON type is an error, not a silent default */
    const char *wrong[] = {"{\"text_config\":[1]}", "{\"vision_config\":true}", "{\"rope_scaling\":\"mrope\"}",
                           "{\"model_type\":7}", "{\"rope_scaling\":{\"mrope_section\":[8,true,0]}}"};
    for (int i = 0; i < 5; i++) CHECK_MSG(parse(wrong[i], &e) != QV_OK, "%s accepted", wrong[i]);
    /* finding 3: vision geometry the front end cannot follow */
    const char *geo[] = {"\"patch_size\":14", "\"patch_size\":16", "\"in_chans\":3", "\"in_chans\":1",
                         "\"spatial_merge_size\":2", "\"spatial_merge_size\":1", "\"temporal_patch_size\":2", "\"temporal_patch_size\":1"};
    for (int i = 0; i < 8; i += 2) {
        at = strstr(k_flat, geo[i]);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - k_flat), k_flat, geo[i + 1], at + strlen(geo[i]));
        CHECK_MSG(parse(buf, &e) == QV_ERR_UNSUPPORTED && strstr(e.msg, "not supported"), "%s accepted (%s)", geo[i + 1], e.msg);
    }
    /* generation_config.json and preprocessor_config.json, loaded from a folder */
    char *dir = test_tmp("cfg");
    mkdir(dir, 0755);
    CHECK_MSG(load_with(dir, NULL, NULL, &e) == QV_OK, "%s", e.msg);
    const char *gen_bad[] = {"{\"max_new_tokens\":true}", "{\"top_k\":false}", "{\"temperature\":true}", "{\"eos_token_id\":[2,true]}",
                             "{\"eos_token_id\":2.5}", "{\"do_sample\":\"no\"}", "{\"bos_token_id\":\"1\"}"};
    for (size_t i = 0; i < sizeof gen_bad / sizeof *gen_bad; i++)
        CHECK_MSG(load_with(dir, "generation_config.json", gen_bad[i], &e) != QV_OK && strstr(e.msg, "generation_config.json"),
                  "generation_config %s accepted", gen_bad[i]);
    CHECK_MSG(load_with(dir, "generation_config.json", "{\"do_sample\":false,\"eos_token_id\":[2,3]}", &e) == QV_OK, "%s", e.msg);
    const char *pre_bad[] = {"{\"min_pixels\":true}", "{\"patch_size\":16}", "{\"merge_size\":1}", "{\"temporal_patch_size\":false}",
                             "{\"size\":{\"shortest_edge\":false}}", "{\"image_mean\":[0.5,true,0.5]}"};
    for (size_t i = 0; i < sizeof pre_bad / sizeof *pre_bad; i++)
        CHECK_MSG(load_with(dir, "preprocessor_config.json", pre_bad[i], &e) != QV_OK && strstr(e.msg, "preprocessor_config.json"),
                  "preprocessor_config %s accepted", pre_bad[i]);
    free(dir);
    return test_done();
}
