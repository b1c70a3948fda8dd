/* unit_output_progress.c — the progress display (src/cli/progress.c) written into a temporary file in
 * each mode: the terminal line (carriage return + erase, labels, counts, units), plain log lines, quiet. */
#include "progress.h"
#include "test.h"

static char *read_back(FILE *f) {
    fflush(f);
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    return s;
}

int main(void) {
    char d[32];
    qv_progress_fmt_duration(d, sizeof d, 1.25);
    CHECK(!strcmp(d, "1.2s") || !strcmp(d, "1.3s"));
    qv_progress_fmt_duration(d, sizeof d, 185);
    CHECK(!strcmp(d, "3m05s"));
    qv_progress_fmt_duration(d, sizeof d, 3720);
    CHECK(!strcmp(d, "1h02m"));
    qv_progress_fmt_duration(d, sizeof d, -1);
    CHECK(!strcmp(d, "?"));

    /* terminal mode */
    FILE *f = tmpfile();
    qv_progress *p = qv_progress_create(f, QV_PROGRESS_TTY);
    CHECK(qv_progress_mode(p) == QV_PROGRESS_TTY);
    qv_progress_set_label(p, "job 1/3 a");
    qv_progress_set_step(p, "window 2/6");
    qv_progress_update(p, "prefill", 0, 10);
    qv_progress_update(p, "prefill", 10, 10);
    qv_progress_log(p, "note %d", 7);
    qv_progress_free(p);
    char *s = read_back(f);
    CHECK_MSG(strstr(s, "\r\033[K[job 1/3 a | window 2/6] prefill 0/10 tok") != NULL, "%s", s);
    CHECK(strstr(s, "prefill 10/10 tok") != NULL);
    CHECK(strstr(s, "\r\033[Kqv: note 7\n") != NULL);                 /* line cleared before the note */
    CHECK(strlen(s) >= 4 && !strcmp(s + strlen(s) - 4, "\r\033[K"));   /* cleared at the end */
    free(s);
    fclose(f);

    /* plain mode: quick stages make no line, notes do; no escape codes */
    f = tmpfile();
    p = qv_progress_create(f, QV_PROGRESS_PLAIN);
    qv_progress_update(p, "generate", 1, 4);
    qv_progress_update(p, "generate", 4, 4);
    qv_progress_log(p, "wrote %s", "x.srt");
    qv_progress_free(p);
    s = read_back(f);
    CHECK_MSG(!strcmp(s, "qv: wrote x.srt\n"), "'%s'", s);
    free(s);
    fclose(f);

    /* quiet and NULL: nothing */
    f = tmpfile();
    p = qv_progress_create(f, QV_PROGRESS_QUIET);
    qv_progress_update(p, "video", 1, 2);
    qv_progress_log(p, "hidden");
    qv_progress_free(p);
    s = read_back(f);
    CHECK(s[0] == 0);
    free(s);
    fclose(f);
    qv_progress_update(NULL, "video", 1, 2);
    qv_progress_log(NULL, "x");
    qv_progress_free(NULL);
    CHECK(qv_progress_mode(NULL) == QV_PROGRESS_QUIET);
    /* AUTO on a file is plain */
    f = tmpfile();
    p = qv_progress_create(f, QV_PROGRESS_AUTO);
    CHECK(qv_progress_mode(p) == QV_PROGRESS_PLAIN);
    qv_progress_free(p);
    fclose(f);
    return test_done();
}
