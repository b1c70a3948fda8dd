/* tok_json.h — a small JSON scanner for the two big parts of tokenizer files (the vocab object and the
 * merges list, ~300k strings), which cJSON would turn into ~450k heap nodes. It reads strings into a
 * reusable buffer, skips values (depth-limited) and hands the spans of everything else to cJSON. */
#ifndef QV_TOK_JSON_H
#define QV_TOK_JSON_H

#include <stddef.h>

typedef struct {
    const char *p, *end;
    char *buf;       /* the last string read, NUL-terminated (may hold NUL inside: use len) */
    size_t len, cap;
} jscan;

void js_init(jscan *s, const char *p, size_t n);
void js_free(jscan *s);
void js_ws(jscan *s);
/* consumes c after whitespace; 0 if the next character is not c */
int js_eat(jscan *s, char c);
/* a string into s->buf / s->len (escapes resolved, \u surrogate pairs joined); 0 on bad JSON */
int js_string(jscan *s);
/* a non-negative integer below limit (no fraction or exponent); 0 otherwise */
int js_uint(jscan *s, long limit, long *out);
/* skips one value of any type; 0 on bad JSON or nesting over 256 */
int js_skip(jscan *s);
/* iterates an array or object: call with *first = 1 after js_eat('[' or '{'); returns 1 when an element
 * follows (the comma eaten), 0 at the end (close eaten), -1 on bad JSON */
int js_next(jscan *s, char close, int *first);

#endif
