#include "core/trace.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "core/common.h"

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

static bool is_all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '0')
            return false;
    }
    return true;
}

bool trace_parse(const char *h, struct trace *t)
{
    if (h == NULL || strlen(h) < TRACE_PARENT_LEN || !is_lower_hex(h, 2) ||
        strncmp(h, "ff", 2) == 0 || h[2] != '-' || h[35] != '-' || h[52] != '-')
        return false;
    /* version 00 is exactly 55 characters; a later version may add fields after a dash */
    if (strncmp(h, "00", 2) == 0 ? h[55] != '\0' : (h[55] != '\0' && h[55] != '-'))
        return false;
    const char *id = h + 3, *span = h + 36, *flags = h + 53;
    if (!is_lower_hex(id, TRACE_ID_HEX) || is_all_zero(id, TRACE_ID_HEX) ||
        !is_lower_hex(span, TRACE_SPAN_HEX) || is_all_zero(span, TRACE_SPAN_HEX) ||
        !is_lower_hex(flags, 2))
        return false;
    memcpy(t->trace_id, id, TRACE_ID_HEX);
    t->trace_id[TRACE_ID_HEX] = '\0';
    memcpy(t->span_id, span, TRACE_SPAN_HEX);
    t->span_id[TRACE_SPAN_HEX] = '\0';
    memcpy(t->flags, flags, 2);
    t->flags[2] = '\0';
    return true;
}

/* n random bytes as 2n lowercase hex digits, never all zero (the spec's invalid value). */
static void random_hex(char *out, size_t n)
{
    unsigned char b[16];
    OQ_ASSERT(n <= sizeof(b));
    static const char hex[] = "0123456789abcdef";
    do {
        OQ_ASSERT(RAND_bytes(b, (int)n) == 1);
        for (size_t i = 0; i < n; i++) {
            out[2 * i] = hex[b[i] >> 4];
            out[2 * i + 1] = hex[b[i] & 15];
        }
        out[2 * n] = '\0';
    } while (is_all_zero(out, 2 * n));
}

void trace_new(struct trace *t)
{
    random_hex(t->trace_id, TRACE_ID_HEX / 2);
    random_hex(t->span_id, TRACE_SPAN_HEX / 2);
    snprintf(t->flags, sizeof(t->flags), "01");
}

void trace_child(const struct trace *parent, struct trace *child)
{
    *child = *parent;
    random_hex(child->span_id, TRACE_SPAN_HEX / 2);
}

void trace_of_operation(const char *traceparent, const char *op_id, struct trace *t)
{
    if (traceparent != NULL && trace_parse(traceparent, t))
        return;
    trace_new(t);
    char hex[TRACE_ID_HEX + 1];
    size_t n = 0;
    for (size_t i = 0; op_id[i] != '\0' && n < TRACE_ID_HEX; i++) {
        if (op_id[i] != '-')
            hex[n++] = op_id[i];
    }
    hex[n] = '\0';
    if (n == TRACE_ID_HEX && strlen(op_id) == 36 && is_lower_hex(hex, n) && !is_all_zero(hex, n))
        memcpy(t->trace_id, hex, TRACE_ID_HEX);
}

void trace_format(const struct trace *t, char *out, size_t len)
{
    snprintf(out, len, "00-%s-%s-%s", t->trace_id, t->span_id, t->flags);
}

void trace_to_columns(const struct trace *t, struct trace_columns *c)
{
    const char *h = t->trace_id;
    snprintf(c->id, sizeof(c->id), "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
    uint64_t bits = strtoull(t->span_id, NULL, 16);
    int64_t span;
    memcpy(&span, &bits, sizeof(span)); /* the same 64 bits, as PostgreSQL's bigint holds them */
    snprintf(c->span, sizeof(c->span), "%" PRId64, span);
    snprintf(c->flags, sizeof(c->flags), "%lu", strtoul(t->flags, NULL, 16));
}

bool trace_state_ok(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= TRACE_STATE_MAX || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
            return false;
    }
    return true;
}
