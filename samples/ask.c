/* ask.c — the smallest complete use of qv's C API: load a model once, ask one question about a video,
 * stream the answer, then caption the video in windows and print WebVTT. Public headers only.
 *
 *   build:  cmake --build build --target sample_ask
 *   run:    build/samples/sample_ask qv-demo qv-demo/demo.mp4 "What happens in this video?"
 *           (qv-demo is made by `qv demo`; any Hugging Face Qwen2-VL folder works the same) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "tasks.h"

static void print_piece(void *user, const char *piece, size_t len) {
    fwrite(piece, 1, len, (FILE *)user);
    fflush((FILE *)user);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR VIDEO \"QUESTION\"\n", argv[0]);
        return 2;
    }
    qv_err err = {0};

    /* 1. the model: weights mmap'd, tokenizer, thread pool — once */
    qv_engine_params ep = qv_engine_default_params();
    ep.model_dir = argv[1];
    qv_engine *e;
    if (qv_engine_create(&e, &ep, &err) != QV_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }

    /* 2. one question: the prompt in the form the checkpoint wants, the answer streamed */
    const char *videos[1] = {argv[2]};
    char *prompt = NULL;
    qv_result res = {0};
    qv_media_opts mo = qv_media_default_opts(); /* fps 2, the reference pixel budgets */
    mo.fps = 1.0;
    qv_gen_opts go = qv_engine_default_gen_opts(e); /* greedy unless the checkpoint samples */
    go.max_tokens = 32;
    go.on_text = print_piece;
    go.user = stdout;
    int rc = 0;
    if (qv_engine_build_prompt(e, videos, 1, NULL, 0, argv[3], NULL, &prompt, &err) != QV_OK ||
        qv_engine_run_raw(e, prompt, &mo, &go, &res, &err) != QV_OK) {
        fprintf(stderr, "\nerror: %s\n", err.msg);
        rc = 1;
    } else {
        printf("\n[%lld prompt tokens, %d generated]\n", (long long)res.n_prompt, res.n_gen);
    }
    free(prompt);
    qv_result_free(&res);

    /* 3. captions per 5-second window, as WebVTT */
    if (rc == 0) {
        qv_task_opts to = qv_task_default_opts();
        to.window_s = 5.0;
        qv_gen_opts gs = qv_engine_default_gen_opts(e);
        gs.max_tokens = 16;
        qv_task_result tr = {0};
        if (qv_task_subtitles(e, argv[2], &mo, &gs, &to, &tr, &err) != QV_OK) {
            fprintf(stderr, "error: %s\n", err.msg);
            rc = 1;
        } else {
            char *vtt = qv_task_render(QV_FMT_VTT, &tr, NULL);
            if (vtt) fputs(vtt, stdout);
            free(vtt);
        }
        qv_task_result_free(&tr);
    }
    qv_engine_free(e);
    return rc;
}
