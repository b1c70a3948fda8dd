/* cmd_ask.c — qv ask: one question about videos and images (or a raw prompt), answer streamed to stdout or
 * one JSON object; --dump writes the run's tensors in the golden files' layout (issues 5 and 6). */
#include "cli.h"
#include "cli_common.h"
#include "cli_cost.h"
#include "prompt.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(void) {
    printf("usage: qv ask [options] [VIDEO|IMAGE ...] \"QUESTION\"\n"
           "       qv ask [options] --video A --image B \"QUESTION\"\n"
           "       qv ask [options] VIDEO -q \"first?\" -q \"second?\"   (or --questions FILE)\n"
           "       qv ask [options] --raw PROMPT      (or --raw-file FILE)\n\n"
           "Answers a question about videos and images with a Qwen2-VL model; the answer streams to stdout.\n"
           "The prompt follows the checkpoint: its chat format when the tokenizer config's template has roles,\n"
           "else the base-model form (vision blocks, then \"Question: ... Answer:\", see --framing).\n\n"
           "inputs and prompt:\n"
           "  VIDEO|IMAGE              a positional file is an image by its extension (.png .jpg .jpeg .webp\n"
           "                           .bmp .tif), else a video; the last positional is the question;\n"
           "                           inputs enter the prompt in command-line order (positionals first)\n"
           "  --video PATH             a video input (repeatable)\n"
           "  --image PATH             an image input (repeatable)\n"
           "  -q, --question TEXT      a question (repeatable): each is answered against the same video prefix,\n"
           "                           as if asked alone (the video is encoded and prefilled once); then every\n"
           "                           positional is an input. (-q at the end, or before an option or a\n"
           "                           file, is still --quiet)\n"
           "  --questions FILE         questions one per line (empty lines skipped; - = stdin)\n"
           "  --framing TEXT           base-form text around the question; {question} marks where it goes\n"
           "                           (default \"Question: {question} Answer:\")\n"
           "  --raw PROMPT             the whole prompt verbatim, special tokens included, with {{video:PATH}}\n"
           "                           and {{image:PATH}} where each vision block goes\n"
           "  --raw-file FILE          the same, read from FILE\n"
           "  --media-root DIR         resolve relative paths of --raw prompts against DIR\n"
           "results:\n"
           "  --json                   print one JSON object (prompt_ids, generated_ids, text, timings,\n"
           "                           rope_delta, grids, cache) instead of streaming the text; one per line\n"
           "                           and question with several questions\n"
           "  --no-stop                ignore stop tokens: generate exactly --max-tokens tokens\n"
           "  --dump OUT.safetensors   write pixel_values*, *_grid_thw, vision_embeds, position_ids, lm.norm,\n"
           "                           logits_last (names and layouts of the golden reference files)\n"
           "  --dump-layers            with --dump: also vision.patch_embed, vision.block.K, lm.layer.K\n"
           "  --pixel-values FILE      take the encoder input (pixel_values*, *_grid_thw) from a safetensors\n"
           "                           file instead of decoding the media\n\n"
           "%s\n"
           "examples:\n"
           "  qv ask --model ~/Qwen2-VL-7B clip.mp4 \"What happens in this video?\"\n"
           "  qv ask --video a.mp4 --image b.png \"Is the object in the picture in the video?\"\n"
           "  qv ask clip.mp4 \"Describe it\" --start 60 --end 90 --fps 1 --max-tokens 100\n"
           "  qv ask --raw '{{image:c.png}}A picture of' --max-tokens 8 --json\n"
           "  QV_MODEL=~/Qwen2-VL-7B qv ask talk.mp4 \"Summarize the talk\" --temperature 0.7 --seed 1\n",
           cli_opts_help);
}

typedef struct {
    qv_progress *pg;
    int streaming_tty;       /* text streams to the same terminal: keep the status line off it */
    int text_started;
    cli_out out;             /* stdout: a write error (closed pipe, full disk) cancels the run */
    long n_pieces;
} ask_ui;

static void on_progress(void *user, const char *stage, long done, long total) {
    ask_ui *ui = user;
    if (strcmp(stage, "generate") == 0 && ui->streaming_tty) return;
    qv_progress_cb(ui->pg, stage, done, total);
}

static void on_text(void *user, const char *piece, size_t len) {
    ask_ui *ui = user;
    if (!ui->text_started) {
        qv_progress_clear(ui->pg);
        ui->text_started = 1;
    }
    ui->n_pieces++;
    cli_out_write(&ui->out, piece, len);
}

static cJSON *ids_json(const int32_t *ids, int64_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

char *cli_result_json(const qv_result *r, double t_load, const char *question) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (question) cJSON_AddStringToObject(o, "question", question);
    cJSON_AddItemToObject(o, "text", cJSON_CreateString(r->text ? r->text : ""));
    cJSON_AddItemToObject(o, "prompt_ids", ids_json(r->prompt_ids, r->n_prompt));
    cJSON_AddItemToObject(o, "generated_ids", ids_json(r->gen_ids, r->n_gen));
    cJSON_AddBoolToObject(o, "stopped", r->stopped);
    cJSON_AddNumberToObject(o, "n_prompt", (double)r->n_prompt);
    cJSON_AddNumberToObject(o, "n_vision_tokens", (double)r->n_vision_tokens);
    cJSON_AddNumberToObject(o, "rope_delta", (double)r->rope_delta);
    cJSON *g = cJSON_AddArrayToObject(o, "grids");
    for (int i = 0; g && i < r->n_vision; i++) {
        const qv_result_vision *v = &r->vision[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "kind", v->is_video ? "video" : "image");
        cJSON_AddStringToObject(x, "path", v->path ? v->path : "");
        cJSON *thw = cJSON_AddArrayToObject(x, "grid_thw");
        cJSON_AddItemToArray(thw, cJSON_CreateNumber(v->t));
        cJSON_AddItemToArray(thw, cJSON_CreateNumber(v->gh));
        cJSON_AddItemToArray(thw, cJSON_CreateNumber(v->gw));
        cJSON_AddNumberToObject(x, "tokens", (double)v->n_tokens);
        cJSON_AddNumberToObject(x, "frames", v->n_frames);
        if (v->is_video) {
            cJSON_AddNumberToObject(x, "first_ms", v->first_ms);
            cJSON_AddNumberToObject(x, "last_ms", v->last_ms);
            cJSON_AddNumberToObject(x, "duration_s", v->duration_s);
        }
        cJSON_AddItemToArray(g, x);
    }
    cJSON *ca = cJSON_AddObjectToObject(o, "cache");
    cJSON_AddNumberToObject(ca, "vision_inputs_cached", r->n_vision_cached);
    cJSON_AddNumberToObject(ca, "prefix_tokens_reused", (double)r->n_prefix_reused);
    cJSON_AddStringToObject(ca, "prefix_from", r->n_prefix_reused ? (r->prefix_from_disk ? "disk" : "memory") : "none");
    cJSON *t = cJSON_AddObjectToObject(o, "timings");
    cJSON_AddNumberToObject(t, "load_s", t_load);
    cJSON_AddNumberToObject(t, "decode_media_s", r->t_decode_media);
    cJSON_AddNumberToObject(t, "vision_s", r->t_vision);
    cJSON_AddNumberToObject(t, "prefill_s", r->t_prefill);
    cJSON_AddNumberToObject(t, "generate_s", r->t_generate);
    cJSON_AddNumberToObject(t, "prefill_tok_per_s", r->t_prefill > 0 ? (double)r->n_prompt / r->t_prefill : 0);
    cJSON_AddNumberToObject(t, "generate_tok_per_s", r->t_generate > 0 ? r->n_gen / r->t_generate : 0);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

#define MAX_INPUTS 64
#define MAX_QUESTIONS 4096

/* questions of --questions FILE (- = stdin): one per line, blank lines skipped; *buf owns the text */
static int read_questions(const char *cmd, const char *file, char **buf, const char **qs, int *n_q) {
    size_t len = 0;
    if (strcmp(file, "-") == 0) *buf = cli_read_stdin(&len);
    else {
        qv_err err = {0};
        if (qv_read_file(file, buf, &len, 64u << 20, &err)) return cli_fail("%s", err.msg);
    }
    if (!*buf) return cli_fail("cannot read the questions from stdin");
    if (strlen(*buf) != len) return cli_fail("%s: the questions file holds a NUL byte", file);
    for (char *line = *buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = 0;
        const char *q = line;
        while (*q == ' ' || *q == '\t') q++;
        if (*q) {
            if (*n_q >= MAX_QUESTIONS) return cli_usage(cmd, "more than %d questions", MAX_QUESTIONS);
            qs[(*n_q)++] = line;
        }
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}


int qv_cmd_ask(int argc, char **argv) {
    const char *cmd = "ask";
    cli_opts o;
    cli_opts_init(&o);
    qv_prompt_media inputs[MAX_INPUTS]; /* in command-line order: the prompt keeps it */
    const char *pos[MAX_INPUTS + 1];
    static const char *questions[MAX_QUESTIONS];
    int n_inputs = 0, n_pos = 0, n_flagged = 0, n_q = 0;
    const char *raw = NULL, *raw_file = NULL, *framing = NULL, *media_root = NULL, *dump = NULL, *pixel_values = NULL;
    const char *questions_file = NULL;
    int json = 0, dump_layers = 0, no_stop = 0, rc0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return help(), 0;
        /* -q TEXT is a question; -q last, or before an option or an existing file, stays --quiet (scripts) */
        int q_is_question = strcmp(a, "-q") == 0 && i + 1 < argc && argv[i + 1][0] != '-' && !qv_file_exists(argv[i + 1]);
        if (q_is_question || cli_opt_is(a, "--question")) {
            const char *v = cli_opt_value(cmd, strcmp(a, "-q") == 0 ? "-q" : "--question", argc, argv, &i);
            if (!v) return 2;
            if (n_q >= MAX_QUESTIONS) return cli_usage(cmd, "more than %d questions", MAX_QUESTIONS);
            questions[n_q++] = v;
            continue;
        }
        int r = cli_opts_parse(&o, cmd, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char **slot = NULL;
        if ((r = cli_media_opt(cmd, argc, argv, &i, inputs, &n_inputs, MAX_INPUTS)) != 0) {
            if (r < 0) return 2;
            n_flagged++;
            continue;
        }
        if (cli_opt_is(a, "--raw")) slot = &raw;
        else if (cli_opt_is(a, "--raw-file")) slot = &raw_file;
        else if (cli_opt_is(a, "--framing")) slot = &framing;
        else if (cli_opt_is(a, "--media-root")) slot = &media_root;
        else if (cli_opt_is(a, "--dump")) slot = &dump;
        else if (cli_opt_is(a, "--pixel-values")) slot = &pixel_values;
        else if (cli_opt_is(a, "--questions")) slot = &questions_file;
        if (slot) {
            char name[32];
            snprintf(name, sizeof name, "%.*s", (int)strcspn(a, "="), a);
            if (!(*slot = cli_opt_value(cmd, name, argc, argv, &i))) return 2;
            continue;
        }
        if (strcmp(a, "--json") == 0) json = 1;
        else if (strcmp(a, "--dump-layers") == 0) dump_layers = 1;
        else if (strcmp(a, "--no-stop") == 0) no_stop = 1;
        else if (strcmp(a, "--") == 0) {
            while (++i < argc && n_pos <= MAX_INPUTS) pos[n_pos++] = argv[i];
        } else if (a[0] == '-' && a[1] != 0) return cli_unknown_option(cmd, a);
        else if (n_pos > MAX_INPUTS) return cli_usage(cmd, "too many arguments");
        else pos[n_pos++] = a;
    }
    if (dump_layers && !dump) return cli_usage(cmd, "--dump-layers needs --dump FILE");
    char *qbuf = NULL; /* the text of --questions FILE: owned until the end */
    if (questions_file) {
        int rq = read_questions(cmd, questions_file, &qbuf, questions, &n_q);
        if (!rq && n_q == 0) rq = cli_usage(cmd, "%s holds no question", questions_file);
        if (rq) {
            free(qbuf);
            return rq;
        }
    }
    int listed = n_q > 0; /* -q / --questions: every positional is an input */
    if (listed && dump && n_q > 1) {
        free(qbuf);
        return cli_usage(cmd, "--dump takes one question");
    }
    if (listed && (raw || raw_file)) {
        free(qbuf);
        return cli_usage(cmd, "--raw takes the whole prompt: no question beside it");
    }

    /* the prompt */
    char *prompt = NULL;
    const char *question = NULL;
    if (raw || raw_file) {
        if (raw && raw_file) return cli_usage(cmd, "give --raw or --raw-file, not both");
        if (n_pos || n_flagged || framing)
            return cli_usage(cmd, "--raw takes the whole prompt: no inputs, question or --framing beside it");
        if (raw_file) {
            qv_err err = {0};
            size_t len;
            if (qv_read_file(raw_file, &prompt, &len, 64u << 20, &err)) return cli_fail("%s", err.msg);
            if (strlen(prompt) != len) {
                free(prompt);
                return cli_fail("%s: the prompt file holds a NUL byte", raw_file);
            }
        } else if (!(prompt = strdup(raw))) return cli_fail("out of memory");
        if (!*prompt) {
            free(prompt);
            return cli_usage(cmd, "the prompt is empty");
        }
    } else {
        if (!listed) questions[n_q++] = n_pos ? pos[--n_pos] : NULL;
        question = questions[0];
        for (int k = 0; k < n_q; k++)
            if (cli_check_question(cmd, questions[k], n_pos + n_inputs)) return free(qbuf), 2;
        /* positional files come first, in their order, then --video/--image in theirs */
        if (n_inputs + n_pos > MAX_INPUTS) return free(qbuf), cli_usage(cmd, "more than %d inputs", MAX_INPUTS);
        memmove(inputs + n_pos, inputs, (size_t)n_inputs * sizeof *inputs);
        for (int i = 0; i < n_pos; i++) inputs[i] = (qv_prompt_media){pos[i], !cli_is_image_path(pos[i])};
        n_inputs += n_pos;
        for (int k = 0; k < n_q; k++) {
            const char *q = questions[k];
            while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
            if (!*q) return free(qbuf), cli_usage(cmd, "the question is empty");
        }
        for (int i = 0; i < n_inputs; i++)
            if (!qv_file_exists(inputs[i].path))
                return free(qbuf), cli_fail("%s: no such file (%s input)", inputs[i].path,
                                            inputs[i].is_video ? "video" : "image");
    }
    if (pixel_values && !qv_file_exists(pixel_values)) {
        free(prompt);
        free(qbuf);
        return cli_fail("%s: no such file (--pixel-values)", pixel_values);
    }

    /* a raw prompt's inputs for the cost line: its {{video:P}} / {{image:P}} markers (none when one is
     * malformed or missing: the run itself says so) */
    char *raw_paths[MAX_INPUTS];
    int n_raw = 0;
    for (const char *p = prompt; p && (p = strstr(p, "{{")) && n_raw >= 0; p += 2) {
        int vid = !strncmp(p, "{{video:", 8), img = !strncmp(p, "{{image:", 8);
        if (!vid && !img) continue;
        const char *end = strstr(p, "}}");
        if (!end || n_raw == MAX_INPUTS) {
            n_raw = -1 - n_raw; /* stop, keep the count to free */
            break;
        }
        char *path = strndup(p + 8, (size_t)(end - p - 8));
        char *full = path && media_root && path[0] != '/' ? qv_path_join(media_root, path) : NULL;
        if (full) free(path), path = full;
        if (!path) break;
        raw_paths[n_raw] = path;
        inputs[n_raw] = (qv_prompt_media){path, vid};
        n_raw++;
        if (!qv_file_exists(path)) {
            n_raw = -1 - n_raw;
            break;
        }
    }
    int n_raw_alloc = n_raw < 0 ? -1 - n_raw : n_raw;
    if (prompt) n_inputs = n_raw < 0 ? -1 : n_raw;
    cli_cost_plan plan = {.inputs = inputs, .n_inputs = n_inputs,
                          .n_text = 30 + (question ? (int64_t)strlen(question) / 3 : 0),
                          .ask_tokens = o.max_tokens >= 0 ? o.max_tokens : 256};
    if (o.dry_run) {
        free(prompt);
        rc0 = n_inputs < 0 ? cli_fail("the prompt's {{video:...}}/{{image:...}} markers name a missing file or do not close")
                           : cli_cost_dry_run(&o, cmd, &plan);
        for (int i = 0; i < n_raw_alloc; i++) free(raw_paths[i]);
        free(qbuf);
        return rc0;
    }
    qv_engine *e;
    int rc = cli_engine_open(&o, cmd, &e);
    if (rc) {
        free(prompt);
        for (int i = 0; i < n_raw_alloc; i++) free(raw_paths[i]);
        free(qbuf);
        return rc;
    }
    if (!pixel_values && n_inputs >= 0) cli_cost_report(&o, cmd, qv_engine_config(e), qv_engine_pool(e), &plan, 0);
    for (int i = 0; i < n_raw_alloc; i++) free(raw_paths[i]);
    qv_err err = {0};
    qv_status st = QV_OK;
    int runs = prompt ? 1 : n_q;
    for (int k = 0; k < runs && st == QV_OK; k++) {
        char *pk = prompt;
        question = prompt ? NULL : questions[k];
        if (!pk && (st = qv_prompt_build(qv_engine_is_chat(e), NULL, inputs, n_inputs, question, framing, &pk, &err)))
            break;
        qv_log(2, "prompt: %s", pk);
        qv_gen_opts go;
        cli_gen_opts(&o, e, &go, 256);
        if (no_stop) go.use_stop = 0;
        go.media_root = media_root;
        go.pixel_values_path = pixel_values;
        ask_ui ui = {cli_progress_open(&o), 0, 0, {stdout, 0}, 0};
        if (k == 0) qv_progress_set_plan(ui.pg, plan.plan_s, plan.plan_units); /* the whole run's ETA */
        ui.streaming_tty = !json && isatty(STDOUT_FILENO) && qv_progress_mode(ui.pg) == QV_PROGRESS_TTY;
        go.on_progress = on_progress;
        go.user = &ui;
        if (!json) go.on_text = on_text;
        if (n_q > 1 && !json) {
            char head[64];
            snprintf(head, sizeof head, "%sQ: ", k ? "\n" : "");
            cli_out_write(&ui.out, head, strlen(head));
            cli_out_write(&ui.out, question, strlen(question));
            cli_out_write(&ui.out, "\nA: ", 4);
        }
        qv_dumper *dumper = NULL;
        if (dump) {
            if (!(dumper = qv_dumper_create())) {
                st = qv_errf(&err, QV_ERR_NOMEM, "out of memory");
                qv_progress_free(ui.pg);
                if (pk != prompt) free(pk);
                break;
            }
            go.dump = qv_dumper_fn;
            go.dump_user = dumper;
            go.dump_layers = dump_layers;
        }
        qv_result res;
        st = qv_engine_run_raw(e, pk, &o.media, &go, &res, &err);
        qv_progress_free(ui.pg);
        if (pk != prompt) free(pk);
        if (!json && (ui.text_started || n_q > 1)) cli_out_write(&ui.out, "\n", 1);
        if (ui.out.err) { /* the answer could not be written: the run stopped there, say so */
            qv_dumper_free(dumper);
            qv_engine_free(e);
            free(prompt);
            free(qbuf);
            char what[96];
            snprintf(what, sizeof what, "the answer to stdout (stopped after %d generated tokens)", res.n_gen);
            qv_result_free(&res);
            return cli_out_fail(&ui.out, what);
        }
        if (st == QV_OK && dump && qv_dumper_write(dumper, dump, &res, &err) != QV_OK) st = err.code ? err.code : QV_ERR_IO;
        if (st == QV_OK) {
            if (json) {
                char *s = cli_result_json(&res, qv_engine_load_seconds(e), n_q > 1 ? question : NULL);
                if (s) {
                    cli_out_write(&ui.out, s, strlen(s));
                    cli_out_write(&ui.out, "\n", 1);
                    free(s);
                    if (ui.out.err) st = qv_errf(&err, QV_ERR_IO, "cannot write the answer to stdout: %s", strerror(ui.out.err));
                } else {
                    st = qv_errf(&err, QV_ERR_NOMEM, "out of memory printing the result");
                }
            }
            if (!o.quiet)
                qv_log(1, "%lld prompt tokens (%lld vision%s) in %.2f s, %d generated in %.2f s (%.2f tok/s)",
                       (long long)res.n_prompt, (long long)res.n_vision_tokens,
                       res.n_prefix_reused ? ", prefix from the cache" : res.n_vision_cached ? ", vision from the cache" : "",
                       res.t_prefill + res.t_vision + res.t_decode_media, res.n_gen, res.t_generate,
                       res.t_generate > 0 ? res.n_gen / res.t_generate : 0.0);
        }
        qv_result_free(&res);
        qv_dumper_free(dumper);
    }
    if (fflush(stdout) != 0 && st == QV_OK) st = qv_errf(&err, QV_ERR_IO, "cannot write the answer to stdout");
    qv_engine_free(e);
    free(prompt);
    free(qbuf);
    if (st == QV_ERR_CANCELLED) {
        fprintf(stderr, "qv: cancelled\n");
        return 130;
    }
    if (st) return cli_fail("%s", err.msg);
    return 0;
}
