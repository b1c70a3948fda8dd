/* main.c — the qv command line: dispatches to the subcommands in src/cli/, installs the log callback
 * and the Ctrl-C handler. Only this file and src/cli/ may include every layer. */
#include "cli.h"
#include "core.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command k_commands[] = {
    {"ask", qv_cmd_ask, "answer a question about a video or image"},
    {"subtitles", qv_cmd_subtitles, "caption a video window by window (SRT, WebVTT, JSON)"},
    {"summarize", qv_cmd_summarize, "summarize a whole video (--detail adds a timestamped outline)"},
    {"batch", qv_cmd_batch, "run many jobs from a JSONL file, resumable"},
    {"chat", qv_cmd_chat, "ask questions about a video one after another (stdin), answers streamed"},
    {"cache", qv_cmd_cache, "list, measure or clear the cache of encoded videos and prompt prefixes"},
    {"serve", qv_cmd_serve, "an OpenAI-compatible HTTP server (chat completions with video and images)"},
    {"demo", qv_cmd_demo, "make a demo model and clip, then run ask and subtitles on them"},
    {"info", qv_cmd_info, "check a model folder and print what it holds"},
    {"quantize", qv_cmd_quantize, "store a model's 8- or 4-bit weights once, for --q8 / --q4 runs"},
    {"gen-weights", qv_cmd_gen_weights, "write a checkpoint with the deterministic weight formula"},
    {"tokenize", qv_cmd_tokenize, "text on stdin -> token ids (JSON)"},
    {"detokenize", qv_cmd_detokenize, "token ids (JSON) on stdin -> text"},
    {"preprocess", qv_cmd_preprocess, "decode, sample and resize a video or image; dump the encoder input"},
    {"bench", qv_cmd_bench, "measure speed (tokenizer, kernels, model, video front end)"},
};
#define N_COMMANDS (sizeof k_commands / sizeof k_commands[0])

static void usage(FILE *f) {
    fprintf(f,
            "qv %s — ask questions about videos, make subtitles and summaries with Qwen2-VL, on CPUs\n\n"
            "usage: qv COMMAND [options]    (qv COMMAND --help for each command's options and examples)\n\n"
            "commands:\n",
            QV_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-12s %s\n", k_commands[i].name, k_commands[i].summary);
    fprintf(f,
            "\nexamples:\n"
            "  qv demo                                      # no model needed: makes one, runs the pipeline\n"
            "  qv ask --model ~/Qwen2-VL-7B clip.mp4 \"What happens in this video?\"\n"
            "  qv subtitles --model ~/Qwen2-VL-7B talk.mp4 -o talk.srt\n"
            "\nThe model folder is --model DIR or $QV_MODEL (a Hugging Face Qwen2-VL checkpoint folder).\n");
}

int qv_cli_dispatch(const char *cmd, int argc, char **argv) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, k_commands[i].name) == 0) return k_commands[i].fn(argc, argv);
    const char *names[N_COMMANDS];
    for (size_t i = 0; i < N_COMMANDS; i++) names[i] = k_commands[i].name;
    const char *near = cli_nearest(cmd, names, (int)N_COMMANDS);
    if (near) fprintf(stderr, "qv: unknown command '%s' (did you mean '%s'? see 'qv --help')\n", cmd, near);
    else fprintf(stderr, "qv: unknown command '%s' (see 'qv --help')\n", cmd);
    return 2;
}

/* First Ctrl-C: the CLI's flag, which every run polls through its abort callback. A second one at least
 * half a second later: leave now. (`timeout -s INT` signals the child and then its whole process group,
 * so one stop request can arrive twice within microseconds: that must not skip the clean stop.) */
static void on_sigint(int sig) {
    (void)sig;
    static struct timespec first;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now); /* async-signal-safe */
    if (cli_interrupted()) {
        double dt = (double)(now.tv_sec - first.tv_sec) + (now.tv_nsec - first.tv_nsec) * 1e-9;
        if (dt >= 0.5) _exit(130);
        return;
    }
    first = now;
    cli_interrupt();
}

static void log_to_stderr(int level, const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "%s%s\n", level == 0 ? "qv: error: " : "", msg);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("qv %s\n", QV_VERSION);
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit fails the write (the cache warns), it does not kill qv */
    qv_log_set(log_to_stderr, NULL, 1);
    return qv_cli_dispatch(cmd, argc - 1, argv + 1);
}
