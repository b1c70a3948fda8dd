/* unit_buf.c — the core's growable buffer (buf.h): qv_grow / qv_grow_n keep contents and double from
 * 256, refuse an overflowing size; qv_buf appends, stays NUL-terminated, hands over "" when empty; an allocation
 * failure (the seam's fault injector, alloc.h) makes the buffer sticky-oom and finish return NULL. */
#include "test.h"
#include "alloc.h"
#include "buf.h"

#include <stdint.h>

int main(void) {
    void *p = NULL;
    size_t cap = 0;
    CHECK(qv_grow(&p, &cap, 10) && cap == 256 && p);
    memset(p, 'x', 256);
    CHECK(qv_grow(&p, &cap, 257) && cap == 512 && ((char *)p)[255] == 'x');
    CHECK(qv_grow(&p, &cap, 100) && cap == 512);              /* already fits: unchanged */
    CHECK(!qv_grow(&p, &cap, SIZE_MAX) && cap == 512 && p);   /* overflow refused, buffer kept */
    free(p);
    p = NULL;
    cap = 0;
    CHECK(qv_grow_n(&p, &cap, 300, sizeof(double)) && cap == 512);   /* elements */
    ((double *)p)[511] = 1.0;
    CHECK(!qv_grow_n(&p, &cap, 513, SIZE_MAX / 8) && cap == 512);    /* bytes would overflow */
    free(p);

    qv_buf b = {0};
    char *s = qv_buf_finish(&b);
    CHECK(s && s[0] == 0);
    free(s);
    for (int i = 0; i < 1000; i++) CHECK(qv_buf_put(&b, "ab", 2) && b.p[b.n] == 0);
    CHECK(b.n == 2000 && b.cap >= 2001 && !memcmp(b.p + 1998, "ab", 2));
    CHECK(qv_buf_puts(&b, "!") && b.n == 2001);
    s = qv_buf_finish(&b);
    CHECK(s && strlen(s) == 2001 && s[2000] == '!' && b.p == NULL && b.n == 0);
    free(s);

    qv_buf_puts(&b, "keep");
    qv_alloc_fail_at(1);                                      /* the next allocation fails */
    char big[600];
    memset(big, 'y', sizeof big);
    CHECK(!qv_buf_put(&b, big, sizeof big) && b.oom);
    qv_alloc_fail_at(0);
    CHECK(!qv_buf_puts(&b, "later"));                         /* sticky */
    CHECK(qv_buf_finish(&b) == NULL && !b.oom && !b.p);
    return test_done();
}
