/* fuzz_prompt.c — prompt markup: the raw form through qv_prompt_parse (segments cover the text, paths
 * hold no "}}"), and the input split into a framing, a question and a path through qv_prompt_build (chat
 * and base): an accepted prompt holds exactly the one input's marker, so user text never becomes markup. */
#include "fuzz_common.h"
#include "prompt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *raw = fuzz_str(data, size);
    qv_prompt_seg *segs;
    int n;
    qv_err err = {0};
    if (qv_prompt_parse(raw, &segs, &n, &err) == QV_OK) {
        for (int i = 0; i < n; i++) {
            if (strlen(segs[i].text) != segs[i].len) abort();
            if (segs[i].kind != QV_SEG_TEXT && (!segs[i].len || strstr(segs[i].text, "}}"))) abort();
        }
        qv_prompt_segs_free(segs, n);
    }
    /* framing \x01 question \x01 path */
    char *a = strchr(raw, 1), *b = a ? strchr(a + 1, 1) : NULL;
    if (a && b) {
        *a = *b = 0;
        const char *framing = raw, *question = a + 1, *path = b + 1;
        for (int chat = 0; chat < 2; chat++) {
            qv_prompt_media m = {.path = path, .is_video = chat};
            char *out = NULL;
            if (qv_prompt_build(chat, NULL, &m, 1, question, *framing ? framing : NULL, &out, &err) == QV_OK) {
                if (qv_prompt_parse(out, &segs, &n, &err) != QV_OK) abort();
                int k = 0;
                for (int i = 0; i < n; i++)
                    if (segs[i].kind != QV_SEG_TEXT) {
                        if (strcmp(segs[i].text, path)) abort();
                        k++;
                    }
                if (k != 1) abort();
                qv_prompt_segs_free(segs, n);
                free(out);
            }
        }
    }
    free(raw);
    return 0;
}
