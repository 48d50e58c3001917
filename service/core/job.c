#include "core/job.h"

#include <string.h>

const char *attempt_outcome(const struct exec_result *res)
{
    if (!res->attempt.made)
        return NULL;
    switch (res->outcome) {
    case OUTCOME_COMPLETED:
        return "succeeded";
    case OUTCOME_RETRY:
        return "retry";
    case OUTCOME_FAILED:
        return "failed";
    case OUTCOME_CONFLICT:
        return "conflict";
    case OUTCOME_RELEASE:
        return res->attempt.interrupted ? "interrupted" : "released_offline";
    }
    return NULL;
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), 0 if there is none: no
 * overlong forms, no surrogates, nothing above U+10FFFF, no NUL. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80             ? 1
                 : (c & 0xE0) == 0xC0 ? 2
                 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4
                                      : 0;
    if (len == 0 || len > n || c == 0)
        return 0;
    unsigned cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

void attempt_excerpt(char out[ATTEMPT_EXCERPT_MAX + 1], const char *body, size_t len)
{
    const unsigned char *s = (const unsigned char *)body;
    size_t in = 0, o = 0;
    while (body != NULL && in < len && o < ATTEMPT_EXCERPT_MAX) {
        size_t n = utf8_len(s + in, len - in);
        if (n == 0) { /* not UTF-8 here, or a sequence cut by the end: one '?' for the byte */
            out[o++] = '?';
            in++;
            continue;
        }
        if (o + n > ATTEMPT_EXCERPT_MAX)
            break;
        memcpy(out + o, s + in, n);
        o += n;
        in += n;
    }
    out[o] = '\0';
}
