/* cmd_chat.c — qv chat: questions about videos and images read line by line from stdin, each answer
 * streamed; the inputs are encoded and prefilled once (the engine keeps the prompt prefix up to the last
 * vision block, issue 11). Chat-form checkpoints keep the conversation (each question sees the earlier
 * turns); base-form ones answer each question on its own, as `qv ask` would. Ctrl-D (EOF) ends. */
#include "cli.h"
#include "cli_common.h"
#include "prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(void) {
    printf("usage: qv chat [options] VIDEO|IMAGE ...\n\n"
           "Reads one question per line from stdin and streams each answer to stdout (one line per answer,\n"
           "or one JSON object per question with --json). The inputs are decoded, encoded and prefilled once;\n"
           "every later question costs only its own tokens. With a chat checkpoint the history is kept as a\n"
           "conversation; with a base checkpoint (or --base) each question is answered on its own, exactly as\n"
           "`qv ask` would. Blank lines are skipped; Ctrl-D ends.\n\n"
           "  --video PATH, --image PATH   inputs (positionals: image by extension, else video)\n"
           "  --framing TEXT               base-form text around each question (see qv ask --help)\n"
           "  --json                       one JSON object per question (as qv ask --json, plus \"question\")\n\n"
           "%s",
           cli_opts_help);
}

#define MAX_INPUTS 64

typedef struct {
    int started;
} chat_ui;

static void on_text(void *user, const char *piece, size_t len) {
    ((chat_ui *)user)->started = 1;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
}

/* appends s to *buf (malloc'd, grown); 0 on OOM */
static int cat(char **buf, size_t *n, const char *s) {
    size_t l = strlen(s);
    char *b = realloc(*buf, *n + l + 1);
    if (!b) return 0;
    memcpy(b + *n, s, l + 1);
    *buf = b;
    *n += l;
    return 1;
}

int qv_cmd_chat(int argc, char **argv) {
    const char *cmd = "chat", *framing = NULL;
    cli_opts o;
    cli_opts_init(&o);
    qv_prompt_media inputs[MAX_INPUTS];
    int n_inputs = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return help(), 0;
        int r = cli_opts_parse(&o, cmd, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if ((r = cli_media_opt(cmd, argc, argv, &i, inputs, &n_inputs, MAX_INPUTS)) != 0) {
            if (r < 0) return 2;
        } else if (cli_opt_is(a, "--framing")) {
            if (!(framing = cli_opt_value(cmd, "--framing", argc, argv, &i))) return 2;
        } else if (strcmp(a, "--json") == 0) json = 1;
        else if (a[0] == '-' && a[1]) return cli_usage(cmd, "unknown option '%s'", a);
        else if (n_inputs >= MAX_INPUTS) return cli_usage(cmd, "more than %d inputs", MAX_INPUTS);
        else inputs[n_inputs++] = (qv_prompt_media){a, !cli_is_image_path(a)};
    }
    if (n_inputs == 0) return cli_usage(cmd, "no video or image given");
    for (int i = 0; i < n_inputs; i++)
        if (!qv_file_exists(inputs[i].path))
            return cli_fail("%s: no such file (%s input)", inputs[i].path, inputs[i].is_video ? "video" : "image");
    qv_engine *e;
    int rc = cli_engine_open(&o, cmd, &e);
    if (rc) return rc;
    const int chat = qv_engine_is_chat(e);
    int tty = isatty(STDIN_FILENO);
    if (tty && !o.quiet) fprintf(stderr, "qv chat: one question per line, Ctrl-D ends\n");
    char *line = NULL, *history = NULL; /* chat form: the conversation so far, ending after <|im_end|>\n */
    size_t cap = 0, hn = 0;
    qv_err err = {0};
    qv_status st = QV_OK;
    ssize_t got;
    while (st == QV_OK && (tty && !o.quiet ? fputs("> ", stderr) : 0, got = getline(&line, &cap, stdin)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        const char *q = line;
        while (*q == ' ' || *q == '\t') q++;
        if (!*q) continue;
        if (strstr(line, "{{")) { /* markers would name files: not from a question */
            fprintf(stderr, "qv chat: a question may not contain \"{{\"; skipped\n");
            continue;
        }
        char *prompt = NULL;
        if (!history || !chat) {
            st = qv_prompt_build(chat, NULL, inputs, n_inputs, line, framing, &prompt, &err);
        } else {
            size_t pn = 0;
            if (!cat(&prompt, &pn, history) || !cat(&prompt, &pn, "<|im_start|>user\n") || !cat(&prompt, &pn, line) ||
                !cat(&prompt, &pn, "<|im_end|>\n<|im_start|>assistant\n"))
                st = qv_errf(&err, QV_ERR_NOMEM, "out of memory");
        }
        if (st) {
            free(prompt);
            break;
        }
        qv_gen_opts go;
        cli_gen_opts(&o, e, &go, 256);
        chat_ui ui = {0};
        if (!json) go.on_text = on_text, go.user = &ui;
        qv_result res;
        st = qv_engine_run_raw(e, prompt, &o.media, &go, &res, &err);
        if (!json) {
            fputc('\n', stdout);
            fflush(stdout);
        }
        if (st == QV_OK && json) {
            char *s = cli_result_json(&res, qv_engine_load_seconds(e), line);
            if (!s) st = qv_errf(&err, QV_ERR_NOMEM, "out of memory printing the result");
            else puts(s), fflush(stdout), free(s);
        }
        if (st == QV_OK && chat) { /* the turn joins the history; "{{" in an answer is broken up */
            free(history);
            history = prompt;
            prompt = NULL;
            hn = strlen(history);
            for (const char *t = res.text; *t; t++) {
                char c2[2] = {*t, 0};
                if (!cat(&history, &hn, c2) || (t[0] == '{' && t[1] == '{' && !cat(&history, &hn, " "))) {
                    st = qv_errf(&err, QV_ERR_NOMEM, "out of memory");
                    break;
                }
            }
            if (!st && !cat(&history, &hn, "<|im_end|>\n")) st = qv_errf(&err, QV_ERR_NOMEM, "out of memory");
        }
        qv_result_free(&res);
        free(prompt);
    }
    if (tty && !o.quiet && st == QV_OK) fputc('\n', stderr);
    free(line);
    free(history);
    qv_engine_free(e);
    if (fflush(stdout) != 0 && st == QV_OK) st = qv_errf(&err, QV_ERR_IO, "cannot write to stdout");
    if (st == QV_ERR_CANCELLED) {
        fprintf(stderr, "qv: cancelled\n");
        return 130;
    }
    if (st) return cli_fail("%s", err.msg);
    return 0;
}
