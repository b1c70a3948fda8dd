/* fixture_ask.c — qv ask against the golden tiny cases (issue 5): tiny_video, tiny_image, tiny_text on the
 * tiny model, from the golden --pixel-values and from the media files, on the reference path (every dumped
 * tensor, layers included, within 1e-4 relative L2; all greedy ids equal) and the fast path (vision_embeds,
 * lm.norm, logits_last within 3e-2; greedy ids while the reference gap exceeds 0.1). Prompt ids, rope_delta,
 * position_ids and grids equal everywhere. */
#include "test.h"
#include "fixture_ask_check.h"

int main(void) {
    char *model = test_fixture("models/tiny-qwen2vl");
    static const char *cases[] = {"tiny_video", "tiny_image", "tiny_text"};
    for (int c = 0; c < 3; c++)
        for (int ref = 1; ref >= 0; ref--)
            for (int pv = 1; pv >= 0; pv--) {
                if (pv && c == 2) continue; /* text only: nothing to take from a file */
                ac_case k = {model, cases[c], ref, pv, ref, ""};
                ac_check_case(&k);
            }
    free(model);
    return test_done();
}
