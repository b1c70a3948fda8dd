/* cli_cost.h — the cost line before a run and --dry-run (cli_cost.c, pipeline/cost.h). */
#ifndef QV_CLI_COST_H
#define QV_CLI_COST_H

#include "cli_common.h"
#include "prompt.h"

typedef struct {
    const qv_prompt_media *inputs;  /* ask: the inputs of its one run; subtitles/summarize: the video */
    int n_inputs;
    int windows;                    /* subtitles, summarize --detail: one run per window */
    double window_s;                /* <= 0: qv_task_auto_window */
    int skip_windows;               /* windows already done (--resume) */
    int summary;                    /* summarize: one run over the whole part in use */
    int64_t n_text;                 /* text tokens per run (0: about 30) */
    int ask_tokens, caption_tokens, summary_tokens; /* generated at most per run */
    /* filled by cli_cost_report: the estimated seconds and units (pairs, prompt tokens, generated tokens
     * at most) of vision, prefill and generate over the whole task, for qv_progress_set_plan; zero when
     * there is no estimate */
    double plan_s[3], plan_units[3];
} cli_cost_plan;

/* Probes the inputs, measures this CPU (~0.3 s) and prints the one cost line on stderr (nothing with
 * --quiet unless dry_run); dry_run also prints the numbers as one JSON line on stdout. pool may be NULL.
 * Returns 0, or with dry_run the exit code of a failure (an input that does not open). */
int cli_cost_report(const cli_opts *o, const char *cmd, const qv_model_config *mc, qv_pool *pool,
                    cli_cost_plan *pl, int dry_run);
/* --dry-run: reads the model's config.json only (no weights, no tokenizer) and reports. Exit code. */
int cli_cost_dry_run(const cli_opts *o, const char *cmd, cli_cost_plan *pl);

#endif
