/* fuzz_jobs.c — a batch job file through qv_jobs_parse: never crashes; every job has an id and a file
 * name made of safe characters, ids and file names are unique, a valid job has a video and a known task. */
#include "fuzz_common.h"
#include "batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qv_joblist jl;
    qv_err err = {0};
    if (qv_jobs_parse((const char *)data, size, &jl, &err) != QV_OK) {
        if (!err.msg[0]) abort();
        return 0;
    }
    for (int i = 0; i < jl.n; i++) {
        const qv_job *j = &jl.jobs[i];
        if (!j->id || !j->file_id || !j->file_id[0] || strlen(j->file_id) > 100) abort();
        for (const char *p = j->file_id; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
                abort();
        if (!strcmp(j->file_id, ".") || !strcmp(j->file_id, "..") || !strncmp(j->file_id, "results", 7)) abort();
        if (!j->error && (!j->video || !j->video[0] || !j->task)) abort();
        for (int k = 0; k < i; k++)
            if (!strcmp(jl.jobs[k].id, j->id) || (!j->error && !strcmp(jl.jobs[k].file_id, j->file_id))) abort();
        for (int k = 0; k < j->n_opts; k++)
            if (!j->keys[k] || !j->vals[k]) abort();
    }
    qv_jobs_free(&jl);
    return 0;
}
