/* fixture_batch.c — `qv batch` end to end with the tiny fixture model and greedy decoding:
 *  1. a batch holding a corrupt video, a missing one and a bad line finishes every other job and reports
 *     those as failed with their reason (exit code 1);
 *  2. a batch killed with SIGKILL midway (twice), then rerun, ends with every job done exactly once (one
 *     "ok" status line per id) and outputs byte-identical to an uninterrupted run;
 *  3. Ctrl-C (SIGINT) stops it with exit code 130 keeping what is done; the rerun finishes identically;
 *  4. two --shard runs started together cover every job exactly once, each in its own status file. */
#include "test.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *g_qv, *g_model;
static char g_dir[1024];

#define N_GOOD 8

/* starts qv batch JOBS -o OUT [shard] in the background; stderr to OUT.log */
static pid_t start_batch(const char *out, const char *shard) {
    pid_t pid = fork();
    if (pid == 0) {
        char log[1200];
        snprintf(log, sizeof log, "%s.log%s", out, shard ? shard : "");
        for (char *p = log + strlen(out); *p; p++)
            if (*p == '/') *p = '_';
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        char jobs[1100];
        snprintf(jobs, sizeof jobs, "%s/jobs.jsonl", g_dir);
        if (shard)
            execl(g_qv, g_qv, "batch", "--model", g_model, jobs, "-o", out, "--threads", "1", "--shard", shard, (char *)NULL);
        else execl(g_qv, g_qv, "batch", "--model", g_model, jobs, "-o", out, "--threads", "1", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_rc(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* lines in a file (0 when missing) */
static int count_lines(const char *path) {
    char *s = test_slurp(path);
    if (!s) return 0;
    int n = 0;
    for (char *p = s; *p; p++) n += *p == '\n';
    free(s);
    return n;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* per id: ok lines and failed lines over the given status files; error text of the last failure */
typedef struct {
    char id[32];
    int ok, failed;
    char error[256];
    char output[64];
} status;

static int read_status(const char *out, const char *const *files, int n_files, status *st, int cap) {
    int n = 0;
    for (int f = 0; f < n_files; f++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", out, files[f]);
        char *s = test_slurp(path);
        if (!s) continue;
        for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
            cJSON *o = cJSON_Parse(line);
            cJSON *id = cJSON_GetObjectItem(o, "id"), *sv = cJSON_GetObjectItem(o, "status");
            if (cJSON_IsString(id) && cJSON_IsString(sv)) {
                int k = 0;
                while (k < n && strcmp(st[k].id, id->valuestring)) k++;
                if (k == n && n < cap) {
                    memset(&st[n], 0, sizeof st[n]);
                    snprintf(st[n].id, sizeof st[n].id, "%s", id->valuestring);
                    n++;
                }
                if (k < n) {
                    if (!strcmp(sv->valuestring, "ok")) {
                        st[k].ok++;
                        cJSON *op = cJSON_GetObjectItem(o, "output");
                        if (cJSON_IsString(op)) snprintf(st[k].output, sizeof st[k].output, "%s", op->valuestring);
                    } else {
                        st[k].failed++;
                        cJSON *e = cJSON_GetObjectItem(o, "error");
                        if (cJSON_IsString(e)) snprintf(st[k].error, sizeof st[k].error, "%s", e->valuestring);
                    }
                }
            }
            cJSON_Delete(o);
        }
        free(s);
    }
    return n;
}

static const status *find(const status *st, int n, const char *id) {
    for (int i = 0; i < n; i++)
        if (!strcmp(st[i].id, id)) return &st[i];
    return NULL;
}

/* every good job exactly once, outputs identical to the reference folder */
static void check_complete(const char *out, const char *const *files, int n_files, const char *ref, const char *what) {
    status st[64];
    int n = read_status(out, files, n_files, st, 64);
    for (int j = 0; j < N_GOOD; j++) {
        char id[16];
        snprintf(id, sizeof id, "j%d", j);
        const status *s = find(st, n, id);
        CHECK_MSG(s && s->ok == 1, "%s: job %s done %d times", what, id, s ? s->ok : 0);
        if (!s || !s->ok) continue;
        char a[1200], b[1200];
        snprintf(a, sizeof a, "%s/%s", out, s->output);
        snprintf(b, sizeof b, "%s/%s", ref, s->output);
        char *x = test_slurp(a), *y = test_slurp(b);
        CHECK_MSG(x && y && !strcmp(x, y), "%s: %s differs from the uninterrupted run", what, s->output);
        free(x);
        free(y);
    }
    const status *bad = find(st, n, "corrupt");
    CHECK_MSG(bad && bad->ok == 0 && bad->failed >= 1, "%s: corrupt job not reported as failed", what);
}

int main(void) {
    g_qv = getenv("QV_BIN");
    if (!g_qv) g_qv = "build/qv";
    g_model = test_fixture("models/tiny-qwen2vl");
    char *dir = test_tmp("batch");
    snprintf(g_dir, sizeof g_dir, "%s", dir);
    free(dir);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", g_dir, g_dir);
    CHECK(test_sh(cmd) == 0);
    char *sample = test_fixture("media/sample_a.mp4");
    /* a truncated copy of a real clip: the container cannot be read */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/a.mp4' && head -c 3000 '%s' > '%s/corrupt.mp4'", sample, g_dir, sample, g_dir);
    CHECK(test_sh(cmd) == 0);
    free(sample);

    /* the job file: 8 good jobs of each kind, a corrupt video, a missing video, a bad line */
    char path[1200];
    snprintf(path, sizeof path, "%s/jobs.jsonl", g_dir);
    FILE *f = fopen(path, "w");
    const char *mo = "\"fps\": 2, \"max_tokens\": 6";
    for (int j = 0; j < N_GOOD; j++) {
        if (j == 3) fprintf(f, "{\"id\": \"corrupt\", \"video\": \"corrupt.mp4\", \"task\": \"ask\", \"question\": \"What?\"}\n");
        if (j == 5) fprintf(f, "{\"id\": \"missing\", \"video\": \"nowhere.mp4\", \"task\": \"summarize\"}\n");
        if (j == 6) fprintf(f, "{\"id\": \"broken\", \"video\": \n");
        if (j % 3 == 0)
            fprintf(f, "{\"id\": \"j%d\", \"video\": \"a.mp4\", \"task\": \"ask\", \"question\": \"What is shown %d?\", %s}\n", j, j, mo);
        else if (j % 3 == 1)
            fprintf(f, "{\"id\": \"j%d\", \"video\": \"a.mp4\", \"task\": \"subtitles\", \"format\": \"%s\", \"window\": %d, %s}\n", j,
                    j % 2 ? "vtt" : "srt", 1 + j % 2, mo);
        else
            fprintf(f, "{\"id\": \"j%d\", \"video\": \"a.mp4\", \"task\": \"summarize\", \"detail\": true, \"format\": \"json\", "
                       "\"window\": 1.6, %s}\n", j, mo);
    }
    fclose(f);
    static const char *const plain[] = {"results.jsonl"};

    /* 1. the uninterrupted reference run, with the failures reported */
    char ref[1200];
    snprintf(ref, sizeof ref, "%s/ref", g_dir);
    double t0 = (double)time(NULL);
    int rc = wait_rc(start_batch(ref, NULL));
    double t_ref = (double)time(NULL) - t0;
    CHECK_MSG(rc == 1, "reference run exit %d (1 = some job failed)", rc);
    {
        status st[64];
        int n = read_status(ref, plain, 1, st, 64);
        CHECK(n == N_GOOD + 3);
        const status *c = find(st, n, "corrupt"), *m = find(st, n, "missing"), *b = find(st, n, "line-9");
        CHECK_MSG(c && c->failed == 1 && strstr(c->error, "corrupt.mp4"), "corrupt: %s", c ? c->error : "(none)");
        CHECK_MSG(m && m->failed == 1 && strstr(m->error, "nowhere.mp4"), "missing: %s", m ? m->error : "(none)");
        CHECK_MSG(b && b->failed == 1 && strstr(b->error, "line 9"), "bad line: %s", b ? b->error : "(none)");
        for (int j = 0; j < N_GOOD; j++) {
            char id[16];
            snprintf(id, sizeof id, "j%d", j);
            const status *s = find(st, n, id);
            CHECK_MSG(s && s->ok == 1 && s->failed == 0, "reference: %s", id);
        }
    }
    /* a rerun of a finished batch runs only the failed jobs again and changes nothing else */
    rc = wait_rc(start_batch(ref, NULL));
    CHECK(rc == 1);
    check_complete(ref, plain, 1, ref, "rerun");

    /* 2. SIGKILL midway, twice, then finish */
    char killed[1200];
    snprintf(killed, sizeof killed, "%s/killed", g_dir);
    snprintf(path, sizeof path, "%s/results.jsonl", killed);
    int kills = 0;
    for (int round = 0; round < 2; round++) {
        int before = count_lines(path);
        pid_t pid = start_batch(killed, NULL);
        /* wait for one or two more finished jobs, then kill without warning */
        for (int w = 0; w < 2000 && count_lines(path) < before + 1 + round; w++) sleep_ms(10);
        sleep_ms(37 * (round + 1)); /* land inside a job, not on a boundary */
        if (kill(pid, SIGKILL) == 0) kills++;
        wait_rc(pid);
    }
    CHECK(kills == 2);
    int lines_after_kill = count_lines(path);
    CHECK_MSG(lines_after_kill < N_GOOD + 3, "the kills came too late to test anything (%d lines)", lines_after_kill);
    rc = wait_rc(start_batch(killed, NULL));
    CHECK(rc == 1);
    check_complete(killed, plain, 1, ref, "after SIGKILL");

    /* 3. Ctrl-C: exit 130, nothing lost, rerun completes */
    char intr[1200];
    snprintf(intr, sizeof intr, "%s/intr", g_dir);
    snprintf(path, sizeof path, "%s/results.jsonl", intr);
    pid_t pid = start_batch(intr, NULL);
    for (int w = 0; w < 2000 && count_lines(path) < 2; w++) sleep_ms(10);
    kill(pid, SIGINT);
    rc = wait_rc(pid);
    CHECK_MSG(rc == 130 || rc == 1, "Ctrl-C exit %d", rc);
    rc = wait_rc(start_batch(intr, NULL));
    CHECK(rc == 1);
    check_complete(intr, plain, 1, ref, "after Ctrl-C");

    /* 4. two shards at once */
    char sh2[1200];
    snprintf(sh2, sizeof sh2, "%s/shards", g_dir);
    mkdir(sh2, 0755);
    pid_t p0 = start_batch(sh2, "0/2"), p1 = start_batch(sh2, "1/2");
    int rc0 = wait_rc(p0), rc1 = wait_rc(p1);
    CHECK(rc0 <= 1 && rc1 <= 1);
    static const char *const shards[] = {"results.0-of-2.jsonl", "results.1-of-2.jsonl"};
    check_complete(sh2, shards, 2, ref, "shards");
    {
        /* each job in the file of its own shard only: line L goes to shard L % 2 */
        status s0[64], s1[64];
        int n0 = read_status(sh2, shards, 1, s0, 64), n1 = read_status(sh2, shards + 1, 1, s1, 64);
        CHECK(n0 > 0 && n1 > 0 && n0 + n1 == N_GOOD + 3);
        for (int i = 0; i < n0; i++) CHECK_MSG(!find(s1, n1, s0[i].id), "%s in both shards", s0[i].id);
        snprintf(path, sizeof path, "%s/results.jsonl", sh2);
        CHECK(access(path, F_OK) != 0);
    }
    fprintf(stderr, "reference batch: %.0f s for %d jobs\n", t_ref, N_GOOD + 3);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (t_fail == 0) test_sh(cmd);
    return test_done();
}
