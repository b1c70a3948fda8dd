/* unit_harden_batch.c — batch identity (issue 12, finding 7) with a fake job function:
 *  - a typed id of the automatic form "line-N" is refused, and the job without an id on line N still runs;
 *  - while a run is active in a folder, a run with another shard count (without --shard vs --shard I/2)
 *    is refused, so two runs never own one job; a run with the same count is not;
 *  - the fingerprint decides: a job whose fingerprint changed runs again, force runs all. */
#include "batch.h"
#include "test.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char k_jobs[] = "{\"id\": \"line-2\", \"video\": \"a.mp4\", \"question\": \"What?\"}\n"
                             "{\"video\": \"b.mp4\", \"question\": \"Where?\"}\n"
                             "{\"id\": \"x\", \"video\": \"c.mp4\", \"question\": \"Who?\"}\n"
                             "{\"id\": \"y\", \"video\": \"d.mp4\", \"question\": \"How?\"}\n";

typedef struct {
    int calls;
    const char *dir;
    const qv_joblist *jl;
    int child_rc[3];      /* qv_batch_run in a child process, during the first job: shard counts 2, 1, 1 */
    int nested;
    const char *fp;       /* fingerprint of every job */
} fake;

static qv_status fake_run(void *user, const qv_job *job, char **doc, const char **ext, qv_err *err) {
    fake *f = user;
    f->calls++;
    if (f->nested && f->calls == 1) {
        const int counts[3][2] = {{0, 2}, {0, 1}, {1, 2}};
        for (int k = 0; k < 3; k++) {
            pid_t pid = fork();
            if (pid == 0) {
                fake g = {0};
                qv_batch_params bp = {.out_dir = f->dir, .shard_i = counts[k][0], .shard_n = counts[k][1], .run = fake_run, .user = &g};
                qv_batch_stats st;
                qv_err e = {0};
                qv_status rc = qv_batch_run(&bp, f->jl, &st, &e);
                if (rc) fprintf(stderr, "child %d/%d: %s\n", counts[k][0], counts[k][1], e.msg);
                _exit(rc == QV_ERR_INVALID && strstr(e.msg, "shard count") ? 10 : rc == QV_ERR_INVALID ? 11 : rc == QV_OK ? 0 : 12);
            }
            int ws;
            waitpid(pid, &ws, 0);
            f->child_rc[k] = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
        }
    }
    char buf[256];
    snprintf(buf, sizeof buf, "result of %s (%s)\n", job->id, job->question);
    *doc = strdup(buf);
    *ext = "txt";
    return *doc ? QV_OK : qv_errf(err, QV_ERR_NOMEM, "oom");
}

static char *fake_fp(void *user, const qv_job *job) {
    (void)job;
    return strdup(((fake *)user)->fp);
}

int main(void) {
    qv_joblist jl;
    qv_err err = {0};
    CHECK(qv_jobs_parse(k_jobs, strlen(k_jobs), &jl, &err) == QV_OK && jl.n == 4);
    /* typed "line-2" refused; the job on line 2 keeps its automatic id and its own file name */
    CHECK(jl.jobs[0].error && strstr(jl.jobs[0].error, "reserved") && !strcmp(jl.jobs[0].id, "line-1"));
    CHECK(!jl.jobs[1].error && !strcmp(jl.jobs[1].id, "line-2") && !strcmp(jl.jobs[1].file_id, "line-2"));
    const char *other_auto[] = {"{\"id\":\"line-7\",\"video\":\"v\",\"question\":\"q\"}", "{\"id\":\"line-007\",\"video\":\"v\",\"question\":\"q\"}"};
    for (int i = 0; i < 2; i++) {
        qv_joblist j2;
        CHECK(qv_jobs_parse(other_auto[i], strlen(other_auto[i]), &j2, &err) == QV_OK && j2.n == 1 && j2.jobs[0].error);
        qv_jobs_free(&j2);
    }
    const char *fine = "{\"id\":\"line-2b\",\"video\":\"v\",\"question\":\"q\"}\n{\"id\":\"Line-2\",\"video\":\"v\",\"question\":\"q\"}";
    /* a failing line that repeats an id is reported under its own line-N (found by fuzz_jobs) */
    const char *dup = "{\"id\":\"a\",\"video\":\"v\",\"question\":\"q\"}\n{\"id\":\"a\",\"video\":\"w\"}\n{\"id\":\"a\",\"question\":\"q\"}";
    qv_joblist jd;
    CHECK(qv_jobs_parse(dup, strlen(dup), &jd, &err) == QV_OK && jd.n == 3);
    if (jd.n == 3) {
        CHECK(!strcmp(jd.jobs[0].id, "a") && !jd.jobs[0].error);
        CHECK(!strcmp(jd.jobs[1].id, "line-2") && jd.jobs[1].error && !strcmp(jd.jobs[1].file_id, "line-2"));
        CHECK(!strcmp(jd.jobs[2].id, "line-3") && jd.jobs[2].error);
    }
    qv_jobs_free(&jd);
    qv_joblist j3;
    CHECK(qv_jobs_parse(fine, strlen(fine), &j3, &err) == QV_OK && j3.n == 2 && !j3.jobs[0].error && !j3.jobs[1].error);
    qv_jobs_free(&j3);

    /* shard counts: a run without shards is active; runs with 2 shards are refused, a second unsharded
     * run is refused by its status-file lock (not the count), and nothing ran twice */
    char *dir = test_tmp("shards");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    fake f = {.dir = dir, .jl = &jl, .nested = 1, .fp = "A"};
    qv_batch_params bp = {.out_dir = dir, .shard_n = 1, .run = fake_run, .user = &f, .fingerprint = fake_fp};
    qv_batch_stats st;
    CHECK_MSG(qv_batch_run(&bp, &jl, &st, &err) == QV_OK, "%s", err.msg);
    CHECK_MSG(f.child_rc[0] == 10, "unsharded active, --shard 0/2: rc %d", f.child_rc[0]);
    CHECK_MSG(f.child_rc[1] == 11, "unsharded active, unsharded again: rc %d", f.child_rc[1]);
    CHECK_MSG(f.child_rc[2] == 10, "unsharded active, --shard 1/2: rc %d", f.child_rc[2]);
    CHECK(st.n_ok == 3 && st.n_failed == 1 && f.calls == 3);
    /* afterwards (nothing active) another shard count is fine and sees the jobs as done */
    f.nested = 0;
    f.calls = 0;
    qv_batch_params b2 = {.out_dir = dir, .shard_i = 0, .shard_n = 2, .run = fake_run, .user = &f, .fingerprint = fake_fp};
    CHECK_MSG(qv_batch_run(&b2, &jl, &st, &err) == QV_OK, "%s", err.msg);
    CHECK(f.calls == 0 && st.n_skipped == 2);   /* lines 2 and 4: done by the unsharded run */
    CHECK(st.n_selected == 2);
    /* fingerprints: a changed one runs again (and is counted), force runs all */
    f.fp = "B";
    f.calls = 0;
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK && f.calls == 3 && st.n_changed == 3 && st.n_skipped == 0);
    f.calls = 0;
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK && f.calls == 0 && st.n_skipped == 3);
    f.fp = "A";   /* back to the first: the latest line is "B", so this is a change again */
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK && f.calls == 3 && st.n_changed == 3);
    f.calls = 0;
    bp.force = 1;
    CHECK(qv_batch_run(&bp, &jl, &st, &err) == QV_OK && f.calls == 3 && st.n_changed == 0 && st.n_skipped == 0);
    qv_jobs_free(&jl);
    free(dir);
    return test_done();
}
