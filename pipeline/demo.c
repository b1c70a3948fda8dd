/* demo.c — the demo checkpoint's tokenizer and configs, and a synthetic Y4M clip (see demo.h).
 * Byte-level symbols follow GPT-2's bytes_to_unicode (the table of Qwen2's tokenizer). */
#include "demo.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const qv_demo_specials[QV_DEMO_N_SPECIAL] = {
    "<|endoftext|>",   "<|im_start|>", "<|im_end|>",   "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>",   "<|box_end|>",  "<|quad_start|>", "<|quad_end|>",       "<|vision_start|>",
    "<|vision_end|>",  "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"};

/* Text the merges are learned from: plain English about what the tool does, so common words of prompts
 * and captions ("the", " video", " what") become single tokens. */
static const char k_corpus[] =
    "Question: Describe what happens in this part of the video in one sentence. Answer: A person walks "
    "into the room, sits down at the table and starts to read a book. Question: What is the man doing? "
    "Answer: He is cooking dinner in the kitchen while talking on the phone. Question: Summarize what "
    "happens in this video in a few sentences. Answer: The video shows a city street at night. Cars drive "
    "past the camera and people cross the road. Later the camera turns to a shop window with lights. "
    "Question: How many people are in the picture? Answer: There are three people in the picture: two "
    "children and a woman who is holding a red umbrella. Question: What colour is the car? Answer: The car "
    "is blue. Question: Where does this scene take place? Answer: The scene takes place in a park, near a "
    "small lake with ducks and trees around it. A dog runs after a ball and brings it back to its owner. "
    "The weather is sunny and the sky is clear. In the next part of the video the camera moves to the "
    "left and shows a bridge over the water. Question: What does the slide say? Answer: The slide shows "
    "the title of the talk and the name of the speaker, followed by a chart of the results. The speaker "
    "explains the chart and points at the numbers on the screen. Question: What happens at the end of the "
    "video? Answer: At the end of the video the players shake hands and the crowd stands up and claps. "
    "The moving square crosses the screen from left to right while the colours of the background change "
    "slowly from red to green and then to blue. A clock in the corner counts the seconds of the clip.";

/* GPT-2 bytes_to_unicode: printable bytes map to themselves, the others to 256, 257, ... in byte order */
static void byte_symbols(char sym[256][4]) {
    int next = 256;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        int cp = keep ? b : next++;
        if (cp < 0x80) {
            sym[b][0] = (char)cp;
            sym[b][1] = 0;
        } else {
            sym[b][0] = (char)(0xC0 | (cp >> 6));
            sym[b][1] = (char)(0x80 | (cp & 0x3F));
            sym[b][2] = 0;
        }
    }
}

typedef struct {
    int *sym;     /* token ids */
    int n;
    int count;    /* occurrences of the word */
} word;

static int is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Rough Qwen2 pre-tokenization of ASCII text: [^letters digits]? letters+ | digit | ' '?punct+ | spaces */
static size_t next_piece(const char *s, size_t i, size_t n) {
    size_t j = i;
    if (j + 1 < n && !is_alpha((unsigned char)s[j]) && !(s[j] >= '0' && s[j] <= '9') && s[j] != '\n' &&
        is_alpha((unsigned char)s[j + 1])) {
        j++;
        while (j < n && is_alpha((unsigned char)s[j])) j++;
        return j;
    }
    if (is_alpha((unsigned char)s[j])) {
        while (j < n && is_alpha((unsigned char)s[j])) j++;
        return j;
    }
    if (s[j] >= '0' && s[j] <= '9') return j + 1;
    if (s[j] == ' ' && j + 1 < n && s[j + 1] != ' ' && !is_alpha((unsigned char)s[j + 1])) j++;
    if (s[j] == ' ') {
        while (j < n && s[j] == ' ') j++;
        return j;
    }
    while (j < n && s[j] != ' ' && !is_alpha((unsigned char)s[j]) && !(s[j] >= '0' && s[j] <= '9')) j++;
    return j > i ? j : i + 1;
}

void qv_demo_tokenizer_free(qv_demo_tok *tk) {
    if (!tk) return;
    for (int i = 0; i < tk->n_vocab; i++) free(tk->vocab[i]);
    for (int i = 0; i < tk->n_merges; i++) free(tk->merges[i]);
    free(tk->vocab);
    free(tk->merges);
    memset(tk, 0, sizeof *tk);
}

static int cmp_pair(const void *x, const void *y) {
    const int *a = x, *b = y;
    return a[0] != b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] != b[1] ? (a[1] < b[1] ? -1 : 1) : 0;
}

static int find_token(const qv_demo_tok *tk, const char *s) {
    for (int i = 0; i < tk->n_vocab; i++)
        if (strcmp(tk->vocab[i], s) == 0) return i;
    return -1;
}

qv_status qv_demo_tokenizer_build(qv_demo_tok *tk, int max_merges, qv_err *err) {
    memset(tk, 0, sizeof *tk);
    if (max_merges < 0) max_merges = 0;
    int cap = 256 + max_merges + QV_DEMO_N_SPECIAL;
    tk->vocab = calloc((size_t)cap, sizeof(char *));
    tk->merges = calloc((size_t)(max_merges ? max_merges : 1), sizeof(char *));
    size_t n = sizeof k_corpus - 1;
    word *words = calloc(n, sizeof(word));
    int n_words = 0;
    int (*pairs)[3] = NULL;
    qv_status st = QV_OK;
    if (!tk->vocab || !tk->merges || !words) goto oom;
    char sym[256][4];
    byte_symbols(sym);
    for (int b = 0; b < 256; b++)
        if (!(tk->vocab[tk->n_vocab++] = strdup(sym[b]))) goto oom;
    /* unique words with counts */
    for (size_t i = 0; i < n;) {
        size_t j = next_piece(k_corpus, i, n);
        int len = (int)(j - i), found = -1;
        for (int w = 0; w < n_words && found < 0; w++) {
            if (words[w].n != len) continue;
            int same = 1;
            for (int k = 0; k < len && same; k++) same = words[w].sym[k] == (unsigned char)k_corpus[i + (size_t)k];
            if (same) found = w;
        }
        if (found >= 0) words[found].count++;
        else {
            word *w = &words[n_words++];
            if (!(w->sym = malloc(sizeof(int) * (size_t)len))) goto oom;
            for (int k = 0; k < len; k++) w->sym[k] = (unsigned char)k_corpus[i + (size_t)k];
            w->n = len;
            w->count = 1;
        }
        i = j;
    }
    /* BPE: merge the most frequent adjacent pair (ties: the smaller "a b" text) until max_merges or no pair
     * occurs twice */
    while (tk->n_merges < max_merges) {
        int best_a = -1, best_b = -1, best_c = 1;
        char *best_txt = NULL;
        /* every adjacent pair once per word occurrence, sorted, then counted by runs */
        int np = 0;
        for (int w = 0; w < n_words; w++) np += words[w].n > 1 ? words[w].n - 1 : 0;
        if (np) {
            int (*grown)[3] = realloc(pairs, sizeof(int[3]) * (size_t)np);
            if (!grown) goto oom;
            pairs = grown;
        }
        np = 0;
        for (int w = 0; w < n_words; w++)
            for (int k = 0; k + 1 < words[w].n; k++) {
                pairs[np][0] = words[w].sym[k];
                pairs[np][1] = words[w].sym[k + 1];
                pairs[np][2] = words[w].count;
                np++;
            }
        if (np) qsort(pairs, (size_t)np, sizeof(int[3]), cmp_pair);
        for (int i = 0; i < np;) {
            int a = pairs[i][0], b = pairs[i][1], c = 0, j = i;
            while (j < np && pairs[j][0] == a && pairs[j][1] == b) c += pairs[j++][2];
            i = j;
            if (c < best_c) continue;
            size_t tl = strlen(tk->vocab[a]) + strlen(tk->vocab[b]) + 2;
            char *txt = malloc(tl);
            if (!txt) {
                free(best_txt);
                goto oom;
            }
            snprintf(txt, tl, "%s %s", tk->vocab[a], tk->vocab[b]);
            if (c > best_c || !best_txt || strcmp(txt, best_txt) < 0) {
                free(best_txt);
                best_txt = txt;
                best_a = a;
                best_b = b;
                best_c = c;
            } else free(txt);
        }
        if (!best_txt || best_c < 2) {
            free(best_txt);
            break;
        }
        tk->merges[tk->n_merges++] = best_txt;
        size_t tl = strlen(tk->vocab[best_a]) + strlen(tk->vocab[best_b]) + 1;
        char *joined = malloc(tl);
        if (!joined) goto oom;
        snprintf(joined, tl, "%s%s", tk->vocab[best_a], tk->vocab[best_b]);
        int id = find_token(tk, joined);
        if (id < 0) {
            id = tk->n_vocab;
            tk->vocab[tk->n_vocab++] = joined;
        } else free(joined);
        for (int w = 0; w < n_words; w++) {
            int o = 0;
            for (int k = 0; k < words[w].n; k++) {
                if (k + 1 < words[w].n && words[w].sym[k] == best_a && words[w].sym[k + 1] == best_b) {
                    words[w].sym[o++] = id;
                    k++;
                } else words[w].sym[o++] = words[w].sym[k];
            }
            words[w].n = o;
        }
    }
    tk->special_base = tk->n_vocab;
    for (int s = 0; s < QV_DEMO_N_SPECIAL; s++)
        if (!(tk->vocab[tk->n_vocab++] = strdup(qv_demo_specials[s]))) goto oom;
    goto done;
oom:
    qv_demo_tokenizer_free(tk);
    st = qv_errf(err, QV_ERR_NOMEM, "out of memory building the demo tokenizer");
done:
    for (int w = 0; w < n_words; w++) free(words[w].sym);
    free(words);
    free(pairs);
    return st;
}

static qv_status write_json(const char *dir, const char *name, cJSON *root, qv_err *err) {
    char *txt = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    char *path = qv_path_join(dir, name);
    qv_status st;
    if (!txt || !path) st = qv_errf(err, QV_ERR_NOMEM, "out of memory writing %s", name);
    else st = qv_write_file_atomic(path, txt, strlen(txt), err);
    free(txt);
    free(path);
    return st;
}

static cJSON *byte_level(void) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddFalseToObject(o, "add_prefix_space");
    cJSON_AddFalseToObject(o, "trim_offsets");
    cJSON_AddFalseToObject(o, "use_regex");
    return o;
}

qv_status qv_demo_write_tokenizer(const qv_demo_tok *tk, const char *dir, qv_err *err) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "version", "1.0");
    cJSON_AddNullToObject(r, "truncation");
    cJSON_AddNullToObject(r, "padding");
    cJSON *added = cJSON_AddArrayToObject(r, "added_tokens");
    for (int s = 0; s < QV_DEMO_N_SPECIAL; s++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", tk->special_base + s);
        cJSON_AddStringToObject(a, "content", qv_demo_specials[s]);
        cJSON_AddFalseToObject(a, "single_word");
        cJSON_AddFalseToObject(a, "lstrip");
        cJSON_AddFalseToObject(a, "rstrip");
        cJSON_AddFalseToObject(a, "normalized");
        cJSON_AddTrueToObject(a, "special");
        cJSON_AddItemToArray(added, a);
    }
    cJSON *norm = cJSON_AddObjectToObject(r, "normalizer");
    cJSON_AddStringToObject(norm, "type", "NFC");
    cJSON *pre = cJSON_AddObjectToObject(r, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *pres = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON *pat = cJSON_AddObjectToObject(split, "pattern");
    cJSON_AddStringToObject(pat, "Regex",
                            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                            "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddItemToArray(pres, split);
    cJSON_AddItemToArray(pres, byte_level());
    cJSON_AddItemToObject(r, "post_processor", byte_level());
    cJSON_AddItemToObject(r, "decoder", byte_level());
    cJSON *m = cJSON_AddObjectToObject(r, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddStringToObject(m, "continuing_subword_prefix", "");
    cJSON_AddStringToObject(m, "end_of_word_suffix", "");
    cJSON_AddFalseToObject(m, "fuse_unk");
    cJSON_AddFalseToObject(m, "byte_fallback");
    cJSON_AddFalseToObject(m, "ignore_merges");
    cJSON *voc = cJSON_AddObjectToObject(m, "vocab");
    for (int i = 0; i < tk->special_base; i++) cJSON_AddNumberToObject(voc, tk->vocab[i], i);
    cJSON *mer = cJSON_AddArrayToObject(m, "merges");
    for (int i = 0; i < tk->n_merges; i++) cJSON_AddItemToArray(mer, cJSON_CreateString(tk->merges[i]));
    qv_status st = write_json(dir, "tokenizer.json", r, err);
    if (st) return st;

    cJSON *c = cJSON_CreateObject();
    cJSON_AddFalseToObject(c, "add_prefix_space");
    cJSON *dec = cJSON_AddObjectToObject(c, "added_tokens_decoder");
    for (int s = 0; s < QV_DEMO_N_SPECIAL; s++) {
        char id[16];
        snprintf(id, sizeof id, "%d", tk->special_base + s);
        cJSON *a = cJSON_AddObjectToObject(dec, id);
        cJSON_AddStringToObject(a, "content", qv_demo_specials[s]);
        cJSON_AddFalseToObject(a, "lstrip");
        cJSON_AddFalseToObject(a, "normalized");
        cJSON_AddFalseToObject(a, "rstrip");
        cJSON_AddFalseToObject(a, "single_word");
        cJSON_AddTrueToObject(a, "special");
    }
    cJSON_AddNullToObject(c, "bos_token");
    cJSON_AddStringToObject(c, "eos_token", "<|endoftext|>");
    cJSON_AddStringToObject(c, "pad_token", "<|endoftext|>");
    cJSON_AddNumberToObject(c, "model_max_length", 32768);
    cJSON_AddStringToObject(c, "tokenizer_class", "Qwen2Tokenizer");
    cJSON_AddStringToObject(c, "comment", "qv demo tokenizer: byte-level BPE written by qv (no chat template: base prompts)");
    return write_json(dir, "tokenizer_config.json", c, err);
}

qv_status qv_demo_write_configs(const qv_demo_tok *tk, const char *dir, qv_err *err) {
    int sb = tk->special_base;
    cJSON *c = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("Qwen2VLForConditionalGeneration"));
    cJSON_AddStringToObject(c, "model_type", "qwen2_vl");
    cJSON_AddNumberToObject(c, "attention_dropout", 0.0);
    cJSON_AddNumberToObject(c, "bos_token_id", sb);
    cJSON_AddNumberToObject(c, "eos_token_id", sb);
    cJSON_AddNumberToObject(c, "vision_start_token_id", sb + 9);
    cJSON_AddNumberToObject(c, "vision_end_token_id", sb + 10);
    cJSON_AddNumberToObject(c, "vision_token_id", sb + 11);
    cJSON_AddNumberToObject(c, "image_token_id", sb + 12);
    cJSON_AddNumberToObject(c, "video_token_id", sb + 13);
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddNumberToObject(c, "hidden_size", 128);
    cJSON_AddNumberToObject(c, "initializer_range", 0.02);
    cJSON_AddNumberToObject(c, "intermediate_size", 384);
    cJSON_AddNumberToObject(c, "max_position_embeddings", 32768);
    cJSON_AddNumberToObject(c, "max_window_layers", 4);
    cJSON_AddNumberToObject(c, "num_attention_heads", 4);
    cJSON_AddNumberToObject(c, "num_hidden_layers", 4);
    cJSON_AddNumberToObject(c, "num_key_value_heads", 2);
    cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-6);
    cJSON_AddNumberToObject(c, "rope_theta", 1000000.0);
    cJSON_AddNumberToObject(c, "sliding_window", 32768);
    cJSON_AddTrueToObject(c, "tie_word_embeddings");
    cJSON_AddStringToObject(c, "torch_dtype", "bfloat16");
    cJSON_AddTrueToObject(c, "use_cache");
    cJSON_AddFalseToObject(c, "use_sliding_window");
    cJSON *v = cJSON_AddObjectToObject(c, "vision_config");
    cJSON_AddNumberToObject(v, "depth", 2);
    cJSON_AddNumberToObject(v, "embed_dim", 64);
    cJSON_AddNumberToObject(v, "mlp_ratio", 4);
    cJSON_AddNumberToObject(v, "num_heads", 2);
    cJSON_AddNumberToObject(v, "in_chans", 3);
    cJSON_AddNumberToObject(v, "hidden_size", 128);
    cJSON_AddNumberToObject(v, "patch_size", 14);
    cJSON_AddNumberToObject(v, "spatial_merge_size", 2);
    cJSON_AddNumberToObject(v, "spatial_patch_size", 14);
    cJSON_AddNumberToObject(v, "temporal_patch_size", 2);
    cJSON *rs = cJSON_AddObjectToObject(c, "rope_scaling");
    cJSON_AddStringToObject(rs, "type", "mrope");
    cJSON *sec = cJSON_AddArrayToObject(rs, "mrope_section");
    /* head_dim 32: the sections cover head_dim/2 = 16 rotary pairs, like [16, 24, 24] of the 7B's 64 */
    cJSON_AddItemToArray(sec, cJSON_CreateNumber(4));
    cJSON_AddItemToArray(sec, cJSON_CreateNumber(6));
    cJSON_AddItemToArray(sec, cJSON_CreateNumber(6));
    cJSON_AddNumberToObject(c, "vocab_size", tk->n_vocab);
    qv_status st = write_json(dir, "config.json", c, err);
    if (st) return st;

    cJSON *g = cJSON_CreateObject();
    cJSON_AddNumberToObject(g, "bos_token_id", sb);
    cJSON_AddNumberToObject(g, "eos_token_id", sb);
    cJSON_AddFalseToObject(g, "do_sample");
    cJSON_AddNumberToObject(g, "max_new_tokens", 2048);
    if ((st = write_json(dir, "generation_config.json", g, err))) return st;

    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "min_pixels", 3136);
    cJSON_AddNumberToObject(p, "max_pixels", 12845056);
    cJSON_AddNumberToObject(p, "patch_size", 14);
    cJSON_AddNumberToObject(p, "temporal_patch_size", 2);
    cJSON_AddNumberToObject(p, "merge_size", 2);
    static const double mean[3] = {0.48145466, 0.4578275, 0.40821073}, stdv[3] = {0.26862954, 0.26130258, 0.27577711};
    cJSON_AddItemToObject(p, "image_mean", cJSON_CreateDoubleArray(mean, 3));
    cJSON_AddItemToObject(p, "image_std", cJSON_CreateDoubleArray(stdv, 3));
    cJSON_AddStringToObject(p, "image_processor_type", "Qwen2VLImageProcessor");
    cJSON_AddStringToObject(p, "processor_class", "Qwen2VLProcessor");
    return write_json(dir, "preprocessor_config.json", p, err);
}

qv_status qv_demo_write_y4m(const char *path, int w, int h, int fps, double seconds, qv_err *err) {
    if (w < 16 || h < 16 || (w & 1) || (h & 1) || w > 4096 || h > 4096 || fps < 1 || fps > 120 || !(seconds > 0) ||
        seconds > 3600)
        return qv_errf(err, QV_ERR_INVALID, "demo clip: bad size %dx%d, fps %d or length %g s", w, h, fps, seconds);
    size_t plane = (size_t)w * (size_t)h, frame = plane + plane / 2;
    unsigned char *buf = malloc(frame);
    if (!buf) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    char *tmp;
    int fd = qv_tmp_create(path, &tmp, err);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        qv_status rs = fd < 0 ? (err ? err->code : QV_ERR_IO) : qv_errf(err, QV_ERR_IO, "%s: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd), unlink(tmp);
        free(tmp);
        free(buf);
        return rs;
    }
    fprintf(f, "YUV4MPEG2 W%d H%d F%d:1 Ip A1:1 C420jpeg\n", w, h, fps);
    int n = (int)lround(seconds * fps);
    int sq = h / 4;
    for (int k = 0; k < n; k++) {
        double t = (double)k / n;
        int x0 = (int)((w - sq) * t), y0 = (int)((h - sq) * (0.5 + 0.4 * sin(6.283185307 * t * 2)));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int in = x >= x0 && x < x0 + sq && y >= y0 && y < y0 + sq;
                buf[(size_t)y * w + x] = in ? 235 : (unsigned char)(16 + (x * 200) / w);
            }
        unsigned char u = (unsigned char)(128 + 100 * cos(6.283185307 * t)), v = (unsigned char)(128 + 100 * sin(6.283185307 * t));
        memset(buf + plane, u, plane / 4);
        memset(buf + plane + plane / 4, v, plane / 4);
        if (fputs("FRAME\n", f) < 0 || fwrite(buf, 1, frame, f) != frame) break;
    }
    free(buf);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        remove(tmp);
        free(tmp);
        return qv_errf(err, QV_ERR_IO, "%s: write failed (disk full?)", path);
    }
    free(tmp);
    return QV_OK;
}
