/* unit_harden_files.c — files qv reads and writes (issue 12, findings 4, 5 and 6):
 *  - an index entry that names no shard file: the message names the entry (it used to be formatted
 *    from freed JSON: ASan heap-use-after-free);
 *  - a FIFO where a file is read (qv_read_file, a safetensors path) is refused at once, not waited on
 *    (an alarm turns a hang into a failure);
 *  - qv_write_file_atomic never writes through a planted symlink at a temp name, and the batch's
 *    stale-temp sweep leaves a user's "ID.txt.tmp.N" file alone. */
#include "batch.h"
#include "test.h"
#include "config.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

static void on_alarm(int sig) {
    (void)sig;
    static const char m[] = "FAIL: blocked on a FIFO (alarm)\n";
    ssize_t w = write(2, m, sizeof m - 1);
    (void)w;
    _exit(1);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

int main(void) {
    qv_err err = {0};
    char *dir = test_tmp("files");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    CHECK(system(cmd) == 0);

    /* finding 4: the index names an entry that is no shard file */
    char *idx = qv_path_join(dir, "model.safetensors.index.json");
    write_text(idx, "{\"weight_map\":{\"model.layers.0.self_attn.q_proj.weight.entry-name-to-report\":\"../elsewhere.safetensors\"}}");
    qv_st *st = NULL;
    CHECK(qv_st_open(&st, dir, &err) == QV_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "entry-name-to-report") && strstr(err.msg, "does not name a shard"), "%s", err.msg);
    unlink(idx);

    /* finding 5: FIFOs */
    signal(SIGALRM, on_alarm);
    char *fifo = qv_path_join(dir, "fifo");
    CHECK(mkfifo(fifo, 0644) == 0);
    alarm(10);
    char *txt = NULL;
    size_t len;
    CHECK(qv_read_file(fifo, &txt, &len, 0, &err) == QV_ERR_IO && strstr(err.msg, "not a regular file"));
    CHECK(qv_st_open(&st, fifo, &err) != QV_OK && strstr(err.msg, "not a regular file"));
    qv_model_config mc;
    char *fdir = qv_path_join(dir, "fifo-model");
    mkdir(fdir, 0755);
    char *fcfg = qv_path_join(fdir, "config.json");
    CHECK(mkfifo(fcfg, 0644) == 0);
    CHECK(qv_config_load_dir(&mc, fdir, &err) != QV_OK && strstr(err.msg, "not a regular file"));
    alarm(0);
    CHECK(qv_read_file(dir, &txt, &len, 0, &err) == QV_ERR_IO && strstr(err.msg, "folder"));

    /* finding 6: a symlink planted at a temp name is never written through */
    char *victim = qv_path_join(dir, "victim"), *out = qv_path_join(dir, "out.txt");
    write_text(victim, "precious\n");
    char name[256];
    for (int n = 0; n < 3; n++) {   /* the old name (out.txt.tmp.PID) and the first new ones */
        if (n == 0) snprintf(name, sizeof name, "%s.tmp.%ld", out, (long)getpid());
        else snprintf(name, sizeof name, "%s/" QV_TMP_PREFIX "out.txt.%ld-%d", dir, (long)getpid(), n - 1);
        CHECK(symlink(victim, name) == 0);
    }
    CHECK_MSG(qv_write_file_atomic(out, "result\n", 7, &err) == QV_OK, "%s", err.msg);
    char *v = test_slurp(victim), *o = test_slurp(out);
    CHECK_MSG(v && !strcmp(v, "precious\n"), "the victim now holds '%s'", v ? v : "(gone)");
    CHECK(o && !strcmp(o, "result\n"));
    struct stat sb;
    CHECK(lstat(out, &sb) == 0 && S_ISREG(sb.st_mode));
    free(v);
    free(o);
    /* temp names: only what qv_tmp_create makes counts as one */
    CHECK(qv_is_tmp_name(".qv-tmp.a.txt.123-0", "a.txt"));
    CHECK(!qv_is_tmp_name(".qv-tmp.a.txt.123", "a.txt") && !qv_is_tmp_name("a.txt.tmp.123", "a.txt"));
    CHECK(!qv_is_tmp_name(".qv-tmp.a.txt.123-0x", "a.txt") && !qv_is_tmp_name(".qv-tmp.a.txt.bak", "a.txt"));

    /* finding 6: the stale-temp sweep of a batch deletes only qv's own temp names */
    char *bdir = qv_path_join(dir, "batch");
    mkdir(bdir, 0755);
    char *user1 = qv_path_join(bdir, "j0.txt.tmp.123"), *user2 = qv_path_join(bdir, "j0.tmp.notes"),
         *stale = qv_path_join(bdir, ".qv-tmp.j0.txt.99999-0");
    write_text(user1, "mine\n");
    write_text(user2, "mine too\n");
    write_text(stale, "half a result");
    const char *jobs = "{\"id\":\"j0\",\"video\":\"x.mp4\",\"task\":\"dance\"}\n";
    qv_joblist jl;
    CHECK(qv_jobs_parse(jobs, strlen(jobs), &jl, &err) == QV_OK);
    qv_batch_params bp = {.out_dir = bdir, .shard_n = 1, .run = NULL};
    qv_batch_stats bs;
    CHECK(qv_batch_run(&bp, &jl, &bs, &err) == QV_OK && bs.n_failed == 1);
    CHECK_MSG(qv_file_exists(user1) && qv_file_exists(user2), "the sweep deleted a user's file");
    CHECK(!qv_file_exists(stale));
    /* a symlink planted as the status file is not followed */
    char *bdir2 = qv_path_join(dir, "batch2"), *res = NULL;
    mkdir(bdir2, 0755);
    res = qv_path_join(bdir2, "results.jsonl");
    CHECK(symlink(victim, res) == 0);
    bp.out_dir = bdir2;
    CHECK(qv_batch_run(&bp, &jl, &bs, &err) == QV_ERR_IO);
    v = test_slurp(victim);
    CHECK(v && !strcmp(v, "precious\n"));
    free(v);
    qv_jobs_free(&jl);
    free(res); free(bdir2); free(user1); free(user2); free(stale); free(bdir); free(victim); free(out);
    free(fifo); free(fdir); free(fcfg); free(idx); free(dir);
    return test_done();
}
