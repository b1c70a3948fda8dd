/* unit_batch.c — the job file parser and the resumable batch runner (pipeline/batch.c) with a fake job
 * function: bad lines fail their own job, reruns skip finished jobs and retry failed ones, a missing
 * output or a torn status line makes the job run again exactly once, shards cover every job once. */
#include "batch.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char k_jobs[] =
    "{\"id\": \"a\", \"video\": \"a.mp4\", \"task\": \"ask\", \"question\": \"What?\", \"max_tokens\": 8}\n"
    "\n"
    "# a comment\n"
    "{\"id\": \"b/../x\", \"video\": \"b.mp4\", \"task\": \"subtitles\", \"format\": \"vtt\", \"window_s\": 2.5, "
    "\"greedy\": true}\n"
    "{\"video\": \"c.mp4\", \"question\": \"Who?\"}\n"
    "not json\n"
    "{\"id\": \"a\", \"video\": \"d.mp4\", \"task\": \"summarize\"}\n"
    "{\"id\": \"e\", \"task\": \"summarize\"}\n"
    "{\"id\": \"f\", \"video\": \"f.mp4\", \"task\": \"dance\"}\n"
    "{\"id\": \"g\", \"video\": \"g.mp4\", \"task\": \"summarize\", \"fps\": [1]}\n"
    "{\"id\": \"h\", \"video\": \"h.mp4\", \"task\": \"summarize\"} trailing\n"
    "  {\"id\": \"i\", \"video\": \"i.mp4\", \"task\": \"summarize\", \"start\": 1.5}\r\n";

static void test_parse(void) {
    qv_joblist jl;
    qv_err err = {0};
    CHECK(qv_jobs_parse(k_jobs, strlen(k_jobs), &jl, &err) == QV_OK);
    CHECK_MSG(jl.n == 10, "%d jobs", jl.n);
    if (jl.n != 10) return;
    qv_job *j = jl.jobs;
    CHECK(j[0].line == 1 && !strcmp(j[0].id, "a") && !strcmp(j[0].task, "ask") && !j[0].error);
    CHECK(j[0].n_opts == 1 && !strcmp(j[0].keys[0], "max-tokens") && !strcmp(j[0].vals[0], "8"));
    CHECK(j[1].line == 4 && !strcmp(j[1].file_id, "b_.._x") && !strcmp(j[1].format, "vtt"));
    CHECK(j[1].n_opts == 2 && !strcmp(j[1].keys[0], "window-s") && !strcmp(j[1].vals[0], "2.5"));
    CHECK(!strcmp(j[1].keys[1], "greedy") && !strcmp(j[1].vals[1], "true"));
    CHECK(j[2].line == 5 && !strcmp(j[2].id, "line-5") && !strcmp(j[2].task, "ask") && !j[2].error);
    CHECK(j[3].line == 6 && j[3].error && strstr(j[3].error, "line 6") && !strcmp(j[3].id, "line-6"));
    CHECK(j[4].error && strstr(j[4].error, "id already used on line 1") && strcmp(j[4].id, "a") != 0);
    CHECK(j[5].error && strstr(j[5].error, "video"));
    CHECK(j[6].error && strstr(j[6].error, "dance"));
    CHECK(j[7].error && strstr(j[7].error, "fps"));
    CHECK(j[8].error && strstr(j[8].error, "line 11"));
    CHECK(j[9].line == 12 && !j[9].error && !strcmp(j[9].vals[0], "1.5"));
    qv_jobs_free(&jl);
    qv_jobs_free(NULL);

    const char *bom = "\xEF\xBB\xBF{\"id\":\"x\",\"video\":\"v.mp4\",\"question\":\"q\"}\r\n";
    CHECK(qv_jobs_parse(bom, strlen(bom), &jl, &err) == QV_OK && jl.n == 1 && !jl.jobs[0].error);
    qv_jobs_free(&jl);
    CHECK(qv_jobs_parse("\n# nothing\n", 11, &jl, &err) == QV_ERR_FORMAT);
    CHECK(qv_jobs_parse("", 0, &jl, &err) == QV_ERR_FORMAT);
}

/* fake jobs: video "bad*" fails; the document is "result of ID" */
typedef struct {
    int calls;
    int cancel_after; /* return QV_ERR_CANCELLED when this many calls were made (0 = never) */
    int started, ended; /* progress callbacks seen */
} fake;

static qv_status fake_run(void *user, const qv_job *job, char **doc, const char **ext, qv_err *err) {
    fake *f = user;
    f->calls++;
    if (!strncmp(job->video, "bad", 3)) return qv_errf(err, QV_ERR_FORMAT, "%s: not a video", job->video);
    if (f->cancel_after && f->calls >= f->cancel_after) {
        return qv_errf(err, QV_ERR_CANCELLED, "cancelled");
    }
    char buf[256];
    snprintf(buf, sizeof buf, "result of %s\n", job->id);
    *doc = strdup(buf);
    *ext = "txt";
    return QV_OK;
}

/* stop once three jobs ran; count the progress callbacks */
static int fake_abort(void *user) { return ((fake *)user)->calls >= 3; }
static void fake_start(void *user, int k, int n, const qv_job *job) {
    (void)k, (void)n, (void)job;
    ((fake *)user)->started++;
}
static void fake_done(void *user, int k, int n, const qv_job *job, int ok, double secs, const char *what) {
    (void)k, (void)n, (void)job, (void)ok, (void)secs;
    ((fake *)user)->ended += what != NULL;
}

/* counts status lines per id in a results file: ok lines for id, failed lines for id */
static void count_status(const char *path, const char *id, int *ok, int *failed) {
    *ok = *failed = 0;
    char *text;
    size_t len;
    if (qv_read_file(path, &text, &len, 0, NULL) != QV_OK) return;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        cJSON *i = cJSON_GetObjectItem(o, "id"), *s = cJSON_GetObjectItem(o, "status");
        if (cJSON_IsString(i) && !strcmp(i->valuestring, id) && cJSON_IsString(s)) {
            if (!strcmp(s->valuestring, "ok")) (*ok)++;
            else (*failed)++;
        }
        cJSON_Delete(o);
    }
    free(text);
}

static char *job_text(int n, int bad_at) {
    char *s = malloc((size_t)n * 128 + 1);
    s[0] = 0;
    for (int i = 0; i < n; i++)
        sprintf(s + strlen(s), "{\"id\":\"j%d\",\"video\":\"%s%d.mp4\",\"question\":\"q\"}\n", i, i == bad_at ? "bad" : "v", i);
    return s;
}

static void test_runner(void) {
    char *dir = test_tmp("batch_unit");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    char *text = job_text(6, 2);
    qv_joblist jl;
    qv_err err = {0};
    CHECK(qv_jobs_parse(text, strlen(text), &jl, &err) == QV_OK && jl.n == 6);
    fake f = {0};
    qv_batch_params bp = {.out_dir = dir, .shard_n = 1, .run = fake_run, .user = &f};
    qv_batch_stats st;
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK);
    CHECK(st.n_selected == 6 && st.n_ok == 5 && st.n_failed == 1 && st.n_skipped == 0 && f.calls == 6);
    char *res = qv_path_join(dir, "results.jsonl");
    int ok, failed;
    count_status(res, "j2", &ok, &failed);
    CHECK(ok == 0 && failed == 1);
    count_status(res, "j3", &ok, &failed);
    CHECK(ok == 1 && failed == 0);
    char *out3 = qv_path_join(dir, "j3.txt");
    char *t3;
    CHECK(qv_read_file(out3, &t3, NULL, 0, NULL) == QV_OK && !strcmp(t3, "result of j3\n"));
    free(t3);

    /* rerun: only the failed job runs again */
    f.calls = 0;
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK);
    CHECK(f.calls == 1 && st.n_skipped == 5 && st.n_failed == 1);

    /* a lost output file (killed between... or deleted) makes the job run again; a torn status line is
     * ended so the next line stays parseable */
    unlink(out3);
    FILE *fp = fopen(res, "a");
    fputs("{\"id\":\"j4\",\"status\":\"o", fp);
    fclose(fp);
    f.calls = 0;
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK);
    CHECK(f.calls == 2 && st.n_ok == 1 && st.n_failed == 1);
    count_status(res, "j3", &ok, &failed);
    CHECK(ok == 2); /* the old line (output gone) and the new one */
    count_status(res, "j5", &ok, &failed);
    CHECK(ok == 1);
    CHECK(qv_file_exists(out3));

    qv_jobs_free(&jl);
    free(text);
    free(out3);
    free(res);
    free(dir);
}

static void test_shards(void) {
    char *dir = test_tmp("batch_unit_shards");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    char *text = job_text(7, -1);
    qv_joblist jl;
    qv_err err = {0};
    CHECK(qv_jobs_parse(text, strlen(text), &jl, &err) == QV_OK);
    int total = 0;
    for (int i = 0; i < 3; i++) {
        fake f = {0};
        qv_batch_params bp = {.out_dir = dir, .shard_i = i, .shard_n = 3, .run = fake_run, .user = &f};
        qv_batch_stats st;
        CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK);
        total += f.calls;
        /* lines 1..7: shard i takes line % 3 == i */
        int want = 0;
        for (int l = 1; l <= 7; l++) want += l % 3 == i;
        CHECK(st.n_selected == want && f.calls == want);
    }
    CHECK(total == 7);
    for (int k = 0; k < 7; k++) {
        char id[16], name[64];
        snprintf(id, sizeof id, "j%d", k);
        int ok_all = 0;
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "results.%d-of-3.jsonl", i);
            char *p = qv_path_join(dir, name);
            int ok, failed;
            count_status(p, id, &ok, &failed);
            ok_all += ok;
            free(p);
        }
        CHECK_MSG(ok_all == 1, "%s done %d times", id, ok_all);
    }
    CHECK(!qv_file_exists(dir) || 1);
    char *plain = qv_path_join(dir, "results.jsonl");
    CHECK(!qv_file_exists(plain));
    /* an unsharded rerun sees the shards' work as done */
    fake f = {0};
    qv_batch_params bp = {.out_dir = dir, .shard_n = 1, .run = fake_run, .user = &f};
    qv_batch_stats st;
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK && f.calls == 0 && st.n_skipped == 7);
    /* temp files a killed run left behind: this shard's are removed, another shard's are not touched */
    char *t0 = qv_path_join(dir, ".qv-tmp.j0.txt.4242-0"), *t1 = qv_path_join(dir, ".qv-tmp.j1.txt.4242-0");
    fclose(fopen(t0, "w"));
    fclose(fopen(t1, "w"));
    bp.shard_i = 0; /* lines 3 and 6 (j2, j5) */
    bp.shard_n = 3;
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK);
    CHECK(qv_file_exists(t0) && qv_file_exists(t1));
    bp.shard_i = 1; /* lines 1, 4, 7 (j0, j3, j6) */
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK);
    CHECK(!qv_file_exists(t0) && qv_file_exists(t1));
    free(t0);
    free(t1);
    /* a second writer of the same status file is refused (the lock of a running batch) */
    char *s0 = qv_path_join(dir, "results.0-of-3.jsonl");
    int lfd = open(s0, O_RDWR | O_APPEND);
    CHECK(lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) == 0);
    bp.shard_i = 0;
    bp.shard_n = 3;
    f.calls = 0;
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_ERR_INVALID && f.calls == 0 && strstr(err.msg, "in use"));
    bp.shard_i = 1; /* another shard is not blocked */
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK);
    close(lfd);
    free(s0);
    bp.shard_i = 3;
    bp.shard_n = 3;
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_ERR_INVALID);
    free(plain);
    qv_jobs_free(&jl);
    free(text);
    free(dir);
}

/* last: the cancel flag cannot be reset */
static void test_cancel(void) {
    char cmd[600];
    char *text = job_text(6, 2);
    qv_joblist jl;
    qv_err err = {0};
    qv_batch_stats st;
    int ok, failed;
    CHECK(qv_jobs_parse(text, strlen(text), &jl, &err) == QV_OK);
    /* cancel: the job being cancelled gets no status line, the batch says so */
    char *dir2 = test_tmp("batch_unit_cancel");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir2);
    CHECK(system(cmd) == 0);
    fake f2 = {.cancel_after = 4};
    qv_batch_params bp2 = {.out_dir = dir2, .shard_n = 1, .run = fake_run, .user = &f2};
    CHECK(qv_batch_run(&bp2, &jl, &st, &err) == QV_ERR_CANCELLED);
    CHECK(st.n_ok == 2 && st.n_failed == 1);
    char *res2 = qv_path_join(dir2, "results.jsonl");
    count_status(res2, "j3", &ok, &failed);
    CHECK(ok == 0 && failed == 0);
    free(res2);
    free(dir2);

    /* the abort callback: polled before each job; the jobs done before it said stop are recorded, and the
     * progress callbacks saw each job start and end */
    char *dir3 = test_tmp("batch_unit_abort");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir3);
    CHECK(system(cmd) == 0);
    fake f3 = {0};
    qv_batch_params bp3 = {.out_dir = dir3, .shard_n = 1, .run = fake_run, .user = &f3, .abort_cb = fake_abort,
                           .on_job_start = fake_start, .on_job_done = fake_done};
    CHECK(qv_batch_run(&bp3, &jl, &st, &err) == QV_ERR_CANCELLED);
    /* j0, j1 ok; j2 fails while the callback already says stop: taken as interrupted, not recorded */
    CHECK(f3.calls == 3 && st.n_ok == 2 && st.n_failed == 0 && f3.started == 3 && f3.ended == 2);
    free(dir3);

    qv_jobs_free(&jl);
    free(text);
}

int main(void) {
    test_parse();
    test_runner();
    test_shards();
    test_cancel();
    return test_done();
}
