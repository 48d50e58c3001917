#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_info {
    unsigned status;
    const char *code;
};

#define OQ_ERR_INFO(name, status, code) {status, code},
static const struct err_info table[] = {OQ_ERR_CODES(OQ_ERR_INFO)};
#undef OQ_ERR_INFO

/* Drops a multi-byte UTF-8 sequence cut short by truncation, so the text stays valid. */
static void trim_utf8(char *s)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i > 0 && ((unsigned char)s[i - 1] & 0x80)) {
        unsigned char lead = (unsigned char)s[i - 1];
        size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (n - (i - 1) < want)
            s[i - 1] = '\0';
    }
}

static void set_message(struct err *e, const char *fmt, va_list ap)
{
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    trim_utf8(e->message);
}

int err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    e->field[0] = '\0';
    e->detail[0] = '\0';
    va_start(ap, fmt);
    set_message(e, fmt, ap);
    va_end(ap);
    return -1;
}

int err_field(struct err *e, enum err_code code, const char *field, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    snprintf(e->field, sizeof(e->field), "%s", field);
    trim_utf8(e->field);
    e->detail[0] = '\0';
    va_start(ap, fmt);
    set_message(e, fmt, ap);
    va_end(ap);
    return -1;
}

void err_detail(struct err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
    trim_utf8(e->detail);
}

void err_prefix_field(struct err *e, const char *prefix)
{
    char joined[2 * sizeof(e->field) + 2];
    if (e->field[0] == '\0')
        snprintf(joined, sizeof(joined), "%.127s", prefix);
    else
        snprintf(joined, sizeof(joined), "%.127s%s%s", prefix, e->field[0] == '[' ? "" : ".",
                 e->field);
    memcpy(e->field, joined, sizeof(e->field) - 1);
    e->field[sizeof(e->field) - 1] = '\0';
    trim_utf8(e->field);
}

unsigned err_http_status(enum err_code code)
{
    return code < ERR__COUNT ? table[code].status : 500;
}

const char *err_wire_code(enum err_code code)
{
    return code < ERR__COUNT ? table[code].code : "internal";
}
