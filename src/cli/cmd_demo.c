/* cmd_demo.c — qv demo: the whole pipeline on a fresh machine with nothing downloaded. Makes a small demo
 * checkpoint (a byte-level tokenizer written by qv, pipeline/demo.c; weights by the formula generator,
 * src/genweights.h), a 10-second test clip (ffmpeg command line; without it a Y4M clip qv writes itself),
 * then asks a question about the clip and captions it. Random weights answer with noise: it says so. */
#include "cli.h"
#include "cli_tool.h"
#include "genweights.h"
#include "demo.h"
#include "model.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void help(void) {
    printf("usage: qv demo [--dir DIR] [--force] [options]\n\n"
           "Runs the whole pipeline without downloading anything:\n"
           "  1. makes a small demo checkpoint in DIR (default ./qv-demo): a byte-level BPE tokenizer written by\n"
           "     qv (256 byte tokens, merges learned from text qv carries, the 14 Qwen2-VL special tokens), a\n"
           "     small Qwen2-VL config and weights from qv's deterministic formula (qv gen-weights);\n"
           "  2. makes a 10-second test clip DIR/demo.mp4 with the ffmpeg command line (testsrc2, 320x240), or\n"
           "     DIR/demo.y4m written by qv when ffmpeg is missing;\n"
           "  3. runs `qv ask` and `qv subtitles` on it and prints the results.\n"
           "The weights are random, so the answers are noise: the point is the pipeline (decode, sample,\n"
           "resize, vision encoder, prompt, prefill, generation, subtitles). For real answers download\n"
           "Qwen2-VL-7B and pass --model PATH to ask, subtitles, summarize or batch.\n\n"
           "demo:\n"
           "  --dir DIR                where to put the model and the clip (default ./qv-demo); reused when\n"
           "                           complete\n"
           "  --force                  remake the model and the clip\n"
           "  --question TEXT          the question asked about the clip\n"
           "  --window S               subtitle window in seconds (default 2.5)\n"
           "  --threads N, --max-tokens N, --quiet, and the media options of qv ask\n\n"
           "examples:\n"
           "  qv demo\n"
           "  qv demo --dir /tmp/qv-demo --question \"What moves?\" --max-tokens 12\n"
           "  qv subtitles --model qv-demo qv-demo/demo.mp4 -o demo.vtt    # afterwards, by hand\n");
}

/* runs argv (no shell); 0 when it exited 0 */
static int run_quiet(char *const argv[]) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        FILE *n = freopen("/dev/null", "w", stdout);
        (void)n;
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int file_ok(const char *dir, const char *name) {
    char *p = qv_path_join(dir, name);
    int ok = p && qv_file_exists(p);
    free(p);
    return ok;
}

/* The demo writes only into a folder of its own: a new one, an empty one, or one holding the marker
 * file DEMO_MARKER that it left there before. A folder with other files (a real checkpoint given by
 * mistake, with or without --force) is refused before anything is written. */
#define DEMO_MARKER ".qv-demo"
static qv_status claim_dir(const char *dir, qv_err *err) {
    qv_status st = qv_mkdir_p(dir, err);
    if (st) return st;
    char *marker = qv_path_join(dir, DEMO_MARKER);
    if (!marker) return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    struct stat sb;
    if (lstat(marker, &sb) == 0) {
        free(marker);
        if (!S_ISREG(sb.st_mode)) return qv_errf(err, QV_ERR_IO, "%s/" DEMO_MARKER " is not a plain file", dir);
        return QV_OK;
    }
    DIR *d = opendir(dir);
    int others = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) others++;
    if (d) closedir(d);
    if (!d || others) {
        free(marker);
        return qv_errf(err, QV_ERR_INVALID,
                       "%s holds files the demo did not make (no " DEMO_MARKER " marker): give --dir a new or empty folder", dir);
    }
    int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) st = qv_errf(err, QV_ERR_IO, "%s: %s", marker, strerror(errno));
    else close(fd);
    free(marker);
    return st;
}

static qv_status make_model(const char *dir, int n_threads, qv_err *err) {
    qv_status st = qv_mkdir_p(dir, err);
    if (st) return st;
    char *src = qv_path_join(dir, ".demo-src");
    char *cfg = src ? qv_path_join(src, "config.json") : NULL;
    if (!cfg) {
        free(src);
        return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    qv_demo_tok tk;
    st = qv_mkdir_p(src, err);
    if (!st) st = qv_demo_tokenizer_build(&tk, 256, err);
    if (!st) {
        st = qv_demo_write_configs(&tk, src, err);
        if (!st) {
            qv_genweights_params gp = qv_genweights_default_params();
            gp.config_path = cfg;
            gp.tensor_specs = qv_model_tensor_specs;
            gp.out_dir = dir;
            gp.n_threads = n_threads;
            gp.abort_cb = cli_abort_cb;
            st = qv_genweights_write(&gp, err);
        }
        if (!st) st = qv_demo_write_tokenizer(&tk, dir, err);
        qv_demo_tokenizer_free(&tk);
    }
    static const char *const names[] = {"config.json", "generation_config.json", "preprocessor_config.json"};
    for (int i = 0; i < 3; i++) {
        char *p = qv_path_join(src, names[i]);
        if (p) unlink(p);
        free(p);
    }
    rmdir(src);
    free(cfg);
    free(src);
    return st;
}

/* the clip: ffmpeg CLI (H.264, else MPEG-4 part 2), else a Y4M written here. *out malloc'd. */
static qv_status make_clip(const char *dir, int force, char **out, qv_err *err) {
    char *mp4 = qv_path_join(dir, "demo.mp4"), *y4m = qv_path_join(dir, "demo.y4m");
    *out = NULL;
    if (!mp4 || !y4m) {
        free(mp4);
        free(y4m);
        return qv_errf(err, QV_ERR_NOMEM, "out of memory");
    }
    if (!force && qv_file_exists(mp4)) {
        *out = mp4;
        free(y4m);
        return QV_OK;
    }
    if (!force && qv_file_exists(y4m)) {
        *out = y4m;
        free(mp4);
        return QV_OK;
    }
    char *tmp; /* made by qv (exclusive, no symlink followed); ffmpeg -y then writes into that file */
    int tfd = qv_tmp_create(mp4, &tmp, err);
    if (tfd < 0) return free(mp4), free(y4m), err->code;
    close(tfd);
    static const char *const codecs[2][4] = {{"-c:v", "libx264", "-pix_fmt", "yuv420p"}, {"-c:v", "mpeg4", "-q:v", "5"}};
    for (int c = 0; c < 2 && !*out; c++) {
        char *argv[] = {"ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                        "testsrc2=size=320x240:rate=25:duration=10", (char *)codecs[c][0], (char *)codecs[c][1],
                        (char *)codecs[c][2], (char *)codecs[c][3], "-f", "mp4", tmp, NULL};
        if (run_quiet(argv) == 0 && rename(tmp, mp4) == 0) *out = mp4;
    }
    unlink(tmp);
    free(tmp);
    if (*out) {
        free(y4m);
        return QV_OK;
    }
    free(mp4);
    qv_log(1, "qv demo: the ffmpeg command line is missing or failed; writing a Y4M test clip instead");
    qv_status st = qv_demo_write_y4m(y4m, 320, 240, 25, 10.0, err);
    if (st) {
        free(y4m);
        return st;
    }
    *out = y4m;
    return QV_OK;
}

static void on_text(void *user, const char *piece, size_t len) {
    qv_progress *pg = user;
    qv_progress_clear(pg);
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
}

int qv_cmd_demo(int argc, char **argv) {
    const char *cmd = "demo";
    cli_opts o;
    tool_opts t;
    cli_opts_init(&o);
    tool_opts_init(&t);
    t.task.window_s = 2.5;
    const char *dir = "qv-demo", *question = "What happens in this video?";
    int force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return help(), 0;
        if (strcmp(a, "--force") == 0) {
            force = 1;
            continue;
        }
        if (cli_opt_is(a, "--dir") || cli_opt_is(a, "--question")) {
            int is_dir = cli_opt_is(a, "--dir");
            const char *v = cli_opt_value(cmd, is_dir ? "--dir" : "--question", argc, argv, &i);
            if (!v) return 2;
            if (!*v) return cli_usage(cmd, "%s needs a value", is_dir ? "--dir" : "--question");
            if (is_dir) dir = v;
            else question = v;
            continue;
        }
        int r = cli_opts_parse(&o, cmd, argc, argv, &i);
        if (r == 0) r = tool_opts_parse(&t, cmd, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        return a[0] == '-' ? cli_unknown_option(cmd, a) : cli_usage(cmd, "unknown argument '%s'", a);
    }
    if (t.output || t.format >= 0 || t.detail) return cli_usage(cmd, "the demo writes DIR/demo.srt itself (no -o/--format/--detail)");
    if (o.dry_run) return cli_usage(cmd, "--dry-run is for ask, subtitles and summarize");
    if (o.model && o.model != cli_default_model()) /* --model given ($QV_MODEL is ignored here) */
        return cli_usage(cmd, "the demo makes and uses its own model (--dir); for a real model run qv ask --model DIR");
    FILE *info = o.quiet ? NULL : stderr;
    double t_start = qv_now();
    qv_err err = {0};

    /* 0. the folder: new, empty or the demo's own */
    if (claim_dir(dir, &err)) return cli_fail("demo: %s", err.msg);
    /* 1. the model */
    int complete = file_ok(dir, "config.json") && file_ok(dir, "tokenizer.json") &&
                   (file_ok(dir, "model.safetensors") || file_ok(dir, "model.safetensors.index.json"));
    if (force || !complete) {
        if (info) fprintf(info, "qv demo: making a demo checkpoint in %s/ (byte-level tokenizer + formula weights)\n", dir);
        double t0 = qv_now();
        if (make_model(dir, o.n_threads, &err)) return cli_fail("demo model: %s", err.msg);
        if (info) fprintf(info, "qv demo: model ready in %.1f s\n", qv_now() - t0);
    } else if (info)
        fprintf(info, "qv demo: using the demo checkpoint in %s/ (--force remakes it)\n", dir);
    o.model = dir;

    /* 2. the clip */
    char *clip = NULL;
    if (make_clip(dir, force, &clip, &err)) return cli_fail("demo clip: %s", err.msg);
    if (info) fprintf(info, "qv demo: clip %s (10 s, 320x240, test pattern)\n", clip);

    /* 3. ask + subtitles with the model loaded once */
    qv_engine *e;
    int rc = cli_engine_open(&o, cmd, &e);
    if (rc) {
        free(clip);
        return rc;
    }
    qv_progress *pg = cli_progress_open(&o);
    qv_gen_opts go;
    cli_gen_opts(&o, e, &go, 24);
    go.on_progress = qv_progress_cb;
    go.user = pg;
    const char *const vids[1] = {clip};
    char *prompt = NULL;
    qv_result res = {0};
    qv_status st = qv_engine_build_prompt(e, vids, 1, NULL, 0, question, t.task.framing, &prompt, &err);
    if (!st) {
        printf("\n$ qv ask --model %s %s \"%s\"\n", dir, clip, question);
        fflush(stdout);
        qv_gen_opts ga = go;
        ga.on_text = on_text;
        st = qv_engine_run_raw(e, prompt, &o.media, &ga, &res, &err);
        qv_progress_clear(pg);
        printf("\n");
        if (!st)
            printf("  (%lld prompt tokens, %lld of them video; %d tokens generated at %.1f tok/s)\n", (long long)res.n_prompt,
                   (long long)res.n_vision_tokens, res.n_gen, res.t_generate > 0 ? res.n_gen / res.t_generate : 0.0);
    }
    free(prompt);
    qv_result_free(&res);
    qv_task_result tr = {0};
    char *srt_path = qv_path_join(dir, "demo.srt");
    if (!st) {
        printf("\n$ qv subtitles --model %s %s --window %g -o %s\n", dir, clip, t.task.window_s, srt_path ? srt_path : "");
        fflush(stdout);
        qv_gen_opts gs = go;
        gs.max_tokens = o.max_tokens >= 0 ? o.max_tokens : 12;
        t.task.on_step = qv_progress_step_cb;
        t.task.user = pg;
        st = qv_task_subtitles(e, clip, &o.media, &gs, &t.task, &tr, &err);
        qv_progress_clear(pg);
        if (!st) {
            qv_out_meta meta = {.video = clip, .model = dir, .task = "subtitles", .prompt = t.task.prompt};
            char *doc = qv_task_render(QV_FMT_SRT, &tr, &meta);
            if (!doc || !srt_path) st = qv_errf(&err, QV_ERR_NOMEM, "out of memory");
            else st = qv_write_file_atomic(srt_path, doc, strlen(doc), &err);
            if (!st) fputs(doc, stdout);
            free(doc);
        }
    }
    qv_task_result_free(&tr);
    qv_progress_free(pg);
    qv_engine_free(e);
    if (st == QV_ERR_CANCELLED) rc = (cli_fail("stopped by Ctrl-C"), 130);
    else if (st) rc = cli_fail("%s", err.msg);
    else {
        printf("The demo model's weights are random (qv's deterministic formula), so the answer and captions\n"
               "above are noise: what ran is the real pipeline (decoding, frame sampling, resizing, vision\n"
               "encoder, prompt, prefill, generation, subtitle timing). Whole demo: %.1f s.\n"
               "For real answers, download Qwen2-VL-7B (Hugging Face folder) and run for example:\n"
               "  qv ask --model PATH %s \"%s\"\n"
               "  qv subtitles --model PATH %s -o demo.vtt\n",
               qv_now() - t_start, clip, question, clip);
    }
    free(srt_path);
    free(clip);
    return rc;
}
