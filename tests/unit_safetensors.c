/* unit_safetensors.c — hostile safetensors files and model folders: each defect gets a clear error
 * naming the file and tensor, never a crash (run under ASan+UBSan too). Also: writer round trip,
 * offsets past 2^32 read exactly (sparse file), and config.json in its flat and nested forms. */
#define _GNU_SOURCE
#include "checkpoint.h"
#include "genweights.h"
#include "model.h"
#include "safetensors.h"
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmpdir;

static char *tpath(const char *name) {
    size_t n = strlen(tmpdir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", tmpdir, name);
    return p;
}

/* writes 8-byte length + header (padded) + data_len zero bytes */
static char *make_st(const char *name, const char *header, uint64_t data_len) {
    char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    uint64_t hl = strlen(header);
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(hl >> (8 * i));
    fwrite(l8, 1, 8, f);
    fwrite(header, 1, hl, f);
    for (uint64_t i = 0; i < data_len; i++) fputc(0, f);
    fclose(f);
    return p;
}

static void expect_fail(const char *file, const char *header, uint64_t data_len, const char *must_contain) {
    char *p = make_st(file, header, data_len);
    qv_st *st = NULL;
    qv_err err = {0};
    qv_status rc = qv_st_open(&st, p, &err);
    CHECK_MSG(rc != QV_OK && st == NULL, "%s: accepted a bad file", file);
    CHECK_MSG(strstr(err.msg, file) != NULL, "%s: message does not name the file: %s", file, err.msg);
    CHECK_MSG(strstr(err.msg, must_contain) != NULL, "%s: message lacks '%s': %s", file, must_contain, err.msg);
    CHECK_MSG(strchr(err.msg, '\n') == NULL, "multi-line message");
    printf("  %-22s -> %s\n", file, err.msg);
    free(p);
}

static void hostile_files(void) {
    expect_fail("short.st", "", 0, "short.st"); /* 8 bytes, header length 0 -> not JSON */
    {
        char *p = tpath("tiny.st");
        FILE *f = fopen(p, "wb"); fwrite("abc", 1, 3, f); fclose(f);
        qv_st *st; qv_err err = {0};
        CHECK(qv_st_open(&st, p, &err) == QV_ERR_FORMAT && strstr(err.msg, "too short"));
        free(p);
    }
    {   /* header length beyond the file */
        char *p = tpath("hlen.st");
        FILE *f = fopen(p, "wb");
        unsigned char l8[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
        fwrite(l8, 1, 8, f); fwrite("{}", 1, 2, f); fclose(f);
        qv_st *st; qv_err err = {0};
        CHECK(qv_st_open(&st, p, &err) == QV_ERR_FORMAT && strstr(err.msg, "header length"));
        free(p);
    }
    expect_fail("notjson.st", "{\"a\": ", 0, "not a JSON object");
    expect_fail("range.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "'w'");
    expect_fail("overlap.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16, "overlap");
    expect_fail("mismatch.st", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3,3],\"data_offsets\":[0,16]}}", 16, "needs 18 bytes");
    expect_fail("dtype.st", "{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "unknown dtype");
    expect_fail("dup.st", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                          "\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4, "twice");
    expect_fail("frac.st", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0.5,2.5]}}", 4, "whole numbers");
    expect_fail("neg.st", "{\"w\":{\"dtype\":\"U8\",\"shape\":[-2],\"data_offsets\":[0,2]}}", 4, "'w'");
    expect_fail("huge.st", "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "overflow");
    expect_fail("big.st", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[18446744073709551615,18446744073709551616]}}", 8, "'w'");
    expect_fail("noshape.st", "{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, "shape");
    expect_fail("notobj.st", "[1,2,3]", 0, "not a JSON object");
}

static void roundtrip_and_large_offsets(void) {
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[3] = {0x3f80, 0x4000, 0xbf80};
    int64_t c[2] = {-1, 1LL << 40};
    qv_tensor ts[3] = {
        {.name = "a", .dtype = QV_F32, .ndim = 2, .shape = {2, 3}, .data = a, .nbytes = sizeof a},
        {.name = "b.weight", .dtype = QV_BF16, .ndim = 1, .shape = {3}, .data = b, .nbytes = sizeof b},
        {.name = "c", .dtype = QV_I64, .ndim = 1, .shape = {2}, .data = c, .nbytes = sizeof c},
    };
    char *p = tpath("rt.safetensors");
    qv_err err = {0};
    const char *meta[] = {"format", "pt", NULL};
    CHECK_MSG(qv_st_write(p, ts, 3, meta, &err) == QV_OK, "%s", err.msg);
    qv_st *st;
    CHECK_MSG(qv_st_open(&st, p, &err) == QV_OK, "%s", err.msg);
    CHECK(qv_st_count(st) == 3);
    const qv_tensor *x = qv_st_get(st, "c");
    CHECK(x && x->dtype == QV_I64 && memcmp(x->data, c, sizeof c) == 0);
    x = qv_st_get(st, "a");
    CHECK(x && x->ndim == 2 && x->shape[1] == 3 && memcmp(x->data, a, sizeof a) == 0);
    CHECK(qv_st_meta(st, 0, "format") && strcmp(qv_st_meta(st, 0, "format"), "pt") == 0);
    CHECK(qv_st_get(st, "missing") == NULL);
    qv_st_free(st);
    free(p);

    /* a sparse 5 GB file with a tensor past 2^32: offsets must be read exactly */
    char hdr[256];
    uint64_t off = 4500000001ull;
    snprintf(hdr, sizeof hdr, "{\"far\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[%llu,%llu]}}",
             (unsigned long long)off, (unsigned long long)off + 4);
    p = make_st("sparse.st", hdr, 0);
    int fd = open(p, O_WRONLY);
    uint64_t data0 = 8 + strlen(hdr);
    CHECK(pwrite(fd, "QVOK", 4, (off_t)(data0 + off)) == 4);
    close(fd);
    CHECK_MSG(qv_st_open(&st, p, &err) == QV_OK, "%s", err.msg);
    x = qv_st_get(st, "far");
    CHECK(x && memcmp(x->data, "QVOK", 4) == 0);
    qv_st_free(st);
    unlink(p);
    free(p);
}

static const char *k_flat =
    "{\"model_type\":\"qwen2_vl\",\"hidden_size\":32,\"intermediate_size\":96,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":300,\"tie_word_embeddings\":true,"
    "\"rms_norm_eps\":1e-6,\"rope_theta\":1000000.0,\"rope_scaling\":{\"type\":\"mrope\",\"mrope_section\":[2,3,3]},"
    "\"vision_config\":{\"depth\":1,\"embed_dim\":32,\"mlp_ratio\":4,\"num_heads\":2,\"in_chans\":3,\"hidden_size\":32,"
    "\"patch_size\":14,\"spatial_merge_size\":2,\"temporal_patch_size\":2}}";
static const char *k_nested =
    "{\"model_type\":\"qwen2_vl\",\"tie_word_embeddings\":true,\"text_config\":{\"hidden_size\":32,\"intermediate_size\":96,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":300,\"rms_norm_eps\":1e-6,"
    "\"rope_parameters\":{\"rope_type\":\"default\",\"mrope_section\":[2,3,3],\"rope_theta\":1000000.0}},"
    "\"vision_config\":{\"depth\":1,\"embed_dim\":32,\"mlp_ratio\":4,\"num_heads\":2,\"in_channels\":3,\"hidden_size\":32,"
    "\"patch_size\":14,\"spatial_merge_size\":2,\"temporal_patch_size\":2}}";

static void configs(void) {
    qv_model_config a, b;
    qv_err err = {0};
    qv_config_defaults(&a);
    qv_config_defaults(&b);
    CHECK_MSG(qv_config_parse(&a, k_flat, strlen(k_flat), "flat", &err) == QV_OK, "%s", err.msg);
    CHECK_MSG(qv_config_parse(&b, k_nested, strlen(k_nested), "nested", &err) == QV_OK, "%s", err.msg);
    CHECK(a.text.hidden == 32 && a.text.head_dim == 16 && a.text.mrope_section[2] == 3 && a.text.tie_embeddings);
    CHECK(memcmp(&a.text, &b.text, sizeof a.text) == 0);
    CHECK(memcmp(&a.vision, &b.vision, sizeof a.vision) == 0);
    CHECK(a.vision.mlp_dim == 128 && a.vision.head_dim == 16);
    CHECK(b.nested_layout == 1 && a.nested_layout == 0);
    /* defaults for missing optional fields: the reference's token ids */
    CHECK(a.text.video_token_id == 151656 && a.text.max_pos == 32768);
    const char *bad[] = {
        "{\"hidden_size\":33,\"num_attention_heads\":2}",
        "{\"hidden_size\":-5}",
        "{\"hidden_size\":1e12}",
        "{\"rope_scaling\":{\"mrope_section\":[1,1,1]}}",
        "{\"model_type\":\"llama\"}",
        "{\"vision_config\":{\"embed_dim\":30,\"num_heads\":4}}",
        "not json",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        qv_model_config c;
        qv_config_defaults(&c);
        qv_err e = {0};
        CHECK_MSG(qv_config_parse(&c, bad[i], strlen(bad[i]), "config.json", &e) != QV_OK, "accepted %s", bad[i]);
        CHECK(strstr(e.msg, "config.json") != NULL);
    }
}

/* model folders: a complete small checkpoint, then one defect at a time */
static void write_text(const char *dir, const char *name, const char *text) {
    char *p = qv_path_join(dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    free(p);
}

static void model_folders(void) {
    char *dir = tpath("m-ok"), *cfg = tpath("flat-config.json");
    write_text(tmpdir, "flat-config.json", k_flat);
    qv_genweights_params p = qv_genweights_default_params();
    p.tensor_specs = qv_model_tensor_specs;
    p.config_path = cfg;
    p.out_dir = dir;
    p.shard_bytes = 20000;
    qv_err err = {0};
    CHECK_MSG(qv_genweights_write(&p, &err) == QV_OK, "%s", err.msg);
    qv_ckpt *ck;
    CHECK_MSG(qv_model_open(&ck, dir, &err) == QV_OK, "%s", err.msg);
    qv_ckpt_free(ck);

    /* shape disagrees with the config: same weights, config says another ffn size */
    char *bad = strdup(k_flat);
    memcpy(strstr(bad, "\"intermediate_size\":96"), "\"intermediate_size\":64", 22);
    char *cp = qv_path_join(dir, "config.json");
    write_text(dir, "config.json", bad);
    CHECK(qv_model_open(&ck, dir, &err) == QV_ERR_FORMAT && strstr(err.msg, "mlp.gate_proj.weight") && strstr(err.msg, "shape"));
    printf("  %-22s -> %s\n", "shape vs config", err.msg);
    /* a tensor the model needs is absent: config asks for 3 layers */
    memcpy(strstr(bad, "\"intermediate_size\":64"), "\"intermediate_size\":96", 22);
    memcpy(strstr(bad, "\"num_hidden_layers\":2"), "\"num_hidden_layers\":3", 21);
    write_text(dir, "config.json", bad);
    CHECK(qv_model_open(&ck, dir, &err) == QV_ERR_FORMAT && strstr(err.msg, "model.layers.2.") && strstr(err.msg, "missing"));
    printf("  %-22s -> %s\n", "missing tensor", err.msg);
    write_text(dir, "config.json", k_flat);
    /* a shard named in the index is missing */
    char shard2[64] = "";
    DIR *dd = opendir(dir);
    for (struct dirent *de; dd && (de = readdir(dd));)
        if (strncmp(de->d_name, "model-00002-of-", 15) == 0) snprintf(shard2, sizeof shard2, "%s", de->d_name);
    if (dd) closedir(dd);
    CHECK(shard2[0] != 0);
    char *s2 = qv_path_join(dir, shard2), *s2b = tpath("moved.safetensors");
    CHECK(rename(s2, s2b) == 0);
    CHECK(qv_model_open(&ck, dir, &err) == QV_ERR_IO && strstr(err.msg, shard2) && strstr(err.msg, "missing"));
    printf("  %-22s -> %s\n", "missing shard", err.msg);
    CHECK(rename(s2b, s2) == 0);
    CHECK_MSG(qv_model_open(&ck, dir, &err) == QV_OK, "%s", err.msg);
    qv_ckpt_free(ck);
    /* no config.json at all */
    char *empty = tpath("m-empty");
    mkdir(empty, 0755);
    CHECK(qv_model_open(&ck, empty, &err) == QV_ERR_IO && strstr(err.msg, "config.json"));
    free(empty); free(s2); free(s2b); free(cp); free(bad); free(dir); free(cfg);
}

int main(void) {
    tmpdir = test_tmp("st");
    qv_err err;
    qv_mkdir_p(tmpdir, &err);
    hostile_files();
    roundtrip_and_large_offsets();
    configs();
    model_folders();
    free(tmpdir);
    return test_done();
}
