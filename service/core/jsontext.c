#include "core/jsontext.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/jsonload.h"

struct out {
    struct oq_buf b;
};

static void put(struct out *o, const char *p, size_t n)
{
    oq_buf_add(&o->b, p, n);
}

static void put_str(struct out *o, const char *p)
{
    oq_buf_str(&o->b, p);
}

static void put_string(struct out *o, const char *s, size_t n)
{
    put(o, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char buf[8];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20) {
            snprintf(buf, sizeof(buf), "\\u%04x", c);
            esc = buf;
        }
        if (esc == NULL)
            continue;
        put(o, s + run, i - run);
        put_str(o, esc);
        run = i + 1;
    }
    put(o, s + run, n - run);
    put(o, "\"", 1);
}

void jsontext_string(struct oq_buf *b, const char *s)
{
    struct out o = {.b = *b};
    put_string(&o, s, strlen(s));
    *b = o.b;
}

/* The shortest %.Ng (N = 1..17) that parses back to d; always looks like a real. */
static void put_real(struct out *o, double d)
{
    char buf[40];
    if (!isfinite(d)) { /* jansson never makes these from text; be safe */
        put_str(o, "null");
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof(buf), "%.*g", p, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    put_str(o, buf);
    if (strpbrk(buf, ".eEn") == NULL)
        put_str(o, ".0"); /* 3.0 stays a real */
}

static void put_value(struct out *o, const json_t *v)
{
    char buf[32];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *m;
        bool first = true;
        put(o, "{", 1);
        json_object_foreach((json_t *)v, k, m)
        {
            if (!first)
                put(o, ",", 1);
            first = false;
            put_string(o, k, strlen(k));
            put(o, ":", 1);
            put_value(o, m);
        }
        put(o, "}", 1);
        break;
    }
    case JSON_ARRAY:
        put(o, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                put(o, ",", 1);
            put_value(o, json_array_get(v, i));
        }
        put(o, "]", 1);
        break;
    case JSON_STRING:
        if (jsonnum_text(v) != NULL) /* a number kept as its text */
            put_str(o, jsonnum_text(v));
        else
            put_string(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        put_str(o, buf);
        break;
    case JSON_REAL:
        put_real(o, json_real_value(v));
        break;
    case JSON_TRUE:
        put_str(o, "true");
        break;
    case JSON_FALSE:
        put_str(o, "false");
        break;
    case JSON_NULL:
        put_str(o, "null");
        break;
    }
}

char *jsontext(const json_t *v)
{
    struct out o = {0};
    put_value(&o, v);
    return o.b.data;
}
