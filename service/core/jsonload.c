#include "core/jsonload.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* PostgreSQL's numeric (PG 15 numeric.c): the exponent must stay below INT_MAX / 2, the
 * display scale at most NUMERIC_DSCALE_MAX, the first digit's weight within int16 base-10000
 * digits (10^131071 at most). */
#define PG_EXP_LIMIT 1073741823LL
#define PG_DSCALE_MAX 16383LL
#define PG_E10_MAX 131071LL
#define MARKER_OPEN "\"\\u0000"

/* A scan of one document: the input, the copy handed to jansson, the first error. */
struct scan {
    const unsigned char *s, *p, *end;
    struct oq_buf out;
    size_t budget; /* bytes numbers written out in full may still add */
    const char *why;
    const unsigned char *at;
};

static int fail(struct scan *sc, const unsigned char *at, const char *why)
{
    if (sc->why == NULL) {
        sc->why = why;
        sc->at = at;
    }
    return -1;
}

static bool is_digit(const struct scan *sc, const unsigned char *p)
{
    return p < sc->end && *p >= '0' && *p <= '9';
}

static void skip_ws(struct scan *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
        sc->p++;
}

/* The length of the valid UTF-8 sequence at p (2 to 4 bytes), or 0 (overlong, surrogate,
 * beyond U+10FFFF, cut short). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (n == 0 || (size_t)(end - p) < n)
        return 0;
    unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    }
    return n;
}

/* Four hex digits at p as a code unit, or -1. */
static long hex4(const struct scan *sc, const unsigned char *p)
{
    if (sc->end - p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The escape at sc->p (just after the backslash); advances past it. */
static int scan_escape(struct scan *sc)
{
    const unsigned char *at = sc->p - 1;
    if (sc->p < sc->end && strchr("\"\\/bfnrt", *sc->p) != NULL && *sc->p != '\0') {
        sc->p++;
        return 0;
    }
    if (sc->p >= sc->end || *sc->p != 'u')
        return fail(sc, at, "invalid escape in a string");
    long u = hex4(sc, sc->p + 1);
    if (u < 0)
        return fail(sc, at, "invalid \\u escape in a string");
    if (u == 0)
        return fail(sc, at, "\\u0000 is not allowed in a string");
    sc->p += 5;
    if (u >= 0xdc00 && u <= 0xdfff)
        return fail(sc, at, "a lone low surrogate in a string");
    if (u >= 0xd800 && u <= 0xdbff) {
        long lo =
            sc->end - sc->p >= 6 && sc->p[0] == '\\' && sc->p[1] == 'u' ? hex4(sc, sc->p + 2) : -1;
        if (lo < 0xdc00 || lo > 0xdfff)
            return fail(sc, at, "a high surrogate without its low surrogate in a string");
        sc->p += 6;
    }
    return 0;
}

/* A string at sc->p (the opening quote), copied as it is. */
static int scan_string(struct scan *sc)
{
    const unsigned char *start = sc->p++;
    for (;;) {
        if (sc->p >= sc->end)
            return fail(sc, start, "a string is not closed");
        unsigned char c = *sc->p;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(sc, sc->p,
                        c == 0 ? "a NUL byte in a string" : "a control character in a string");
        if (c == '\\') {
            sc->p++;
            if (scan_escape(sc) != 0)
                return -1;
        } else if (c >= 0x80) {
            size_t n = utf8_len(sc->p, sc->end);
            if (n == 0)
                return fail(sc, sc->p, "invalid UTF-8 in a string");
            sc->p += n;
        } else {
            sc->p++;
        }
    }
    sc->p++;
    oq_buf_add(&sc->out, start, (size_t)(sc->p - start));
    return 0;
}

static int scan_literal(struct scan *sc)
{
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < OQ_ARRAY_LEN(words); i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(sc->end - sc->p) >= n && memcmp(sc->p, words[i], n) == 0) {
            oq_buf_add(&sc->out, words[i], n);
            sc->p += n;
            return 0;
        }
    }
    return fail(sc, sc->p, "invalid value");
}

/* A number token split into its parts: sign, integer digits, fraction digits, exponent
 * (saturated far beyond PostgreSQL's limit). */
struct num {
    bool neg;
    const unsigned char *ip, *fp;
    long long il, fl, exp;
};

static int number_token(struct scan *sc, struct num *n)
{
    const unsigned char *start = sc->p, *p = sc->p;
    *n = (struct num){.neg = *p == '-'};
    p += n->neg;
    if (!is_digit(sc, p))
        return fail(sc, start, "invalid number");
    n->ip = p;
    p += *p == '0' ? 1 : 0;
    while (n->ip[0] != '0' && is_digit(sc, p))
        p++;
    n->il = p - n->ip;
    if (is_digit(sc, p))
        return fail(sc, start, "invalid number (a leading zero)");
    n->fp = p;
    if (p < sc->end && *p == '.') {
        n->fp = ++p;
        while (is_digit(sc, p))
            p++;
        if ((n->fl = p - n->fp) == 0)
            return fail(sc, start, "invalid number (no digit after the point)");
    }
    if (p < sc->end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = p < sc->end && *p == '-';
        p += p < sc->end && (*p == '-' || *p == '+');
        if (!is_digit(sc, p))
            return fail(sc, start, "invalid number (no digit in the exponent)");
        for (; is_digit(sc, p); p++)
            n->exp = n->exp < 10 * PG_EXP_LIMIT ? n->exp * 10 + (*p - '0') : n->exp;
        n->exp = eneg ? -n->exp : n->exp;
    }
    sc->p = p;
    return 0;
}

/* Digit k of the number's digits (integer then fraction), '0' outside them. */
static char digit_at(const struct num *n, long long k)
{
    if (k < 0 || k >= n->il + n->fl)
        return '0';
    return (char)(k < n->il ? n->ip[k] : n->fp[k - n->il]);
}

/* Does text (canonical, no point) fit json_int_t? */
static bool fits_integer(const char *text)
{
    if (strchr(text, '.') != NULL || strlen(text) > 20)
        return false;
    errno = 0;
    (void)strtoll(text, NULL, 10);
    return errno == 0;
}

/* Writes n as numeric_out renders numeric_in's value: the digits in full, the scale of the
 * input (fraction digits minus the exponent), no sign on zero. */
static int put_number(struct scan *sc, const struct num *n, const unsigned char *start)
{
    long long point = n->il + n->exp, dscale = n->fl - n->exp, first = -1;
    dscale = dscale < 0 ? 0 : dscale;
    for (long long k = 0; k < n->il + n->fl && first < 0; k++)
        first = digit_at(n, k) != '0' ? k : -1;
    if (n->exp >= PG_EXP_LIMIT || n->exp <= -PG_EXP_LIMIT || dscale > PG_DSCALE_MAX ||
        (first >= 0 && point - 1 - first > PG_E10_MAX))
        return fail(sc, start,
                    "a number beyond what PostgreSQL stores (at most 131072 digits "
                    "before the decimal point and 16383 after it)");
    long long intlen = first >= 0 && point > first ? point - first : 1;
    size_t len = (size_t)((n->neg && first >= 0) + intlen + (dscale ? 1 + dscale : 0));
    size_t had = (size_t)(sc->p - start);
    if (len > had && len - had > sc->budget)
        return fail(sc, start,
                    "numbers written out in full would make the document more than "
                    "1 MiB larger");
    sc->budget -= len > had ? len - had : 0;
    char *text = oq_malloc(len + 1), *o = text;
    if (n->neg && first >= 0)
        *o++ = '-';
    if (intlen == 1 && !(first >= 0 && point > first))
        *o++ = '0';
    else
        for (long long k = first; k < point; k++)
            *o++ = digit_at(n, k);
    if (dscale > 0)
        *o++ = '.';
    for (long long k = point; k < point + dscale; k++)
        *o++ = digit_at(n, k);
    *o = '\0';
    bool plain = fits_integer(text);
    if (!plain)
        oq_buf_str(&sc->out, MARKER_OPEN);
    oq_buf_add(&sc->out, text, len);
    if (!plain)
        oq_buf_add(&sc->out, "\"", 1);
    free(text);
    return 0;
}

static int scan_number(struct scan *sc)
{
    const unsigned char *start = sc->p;
    struct num n;
    return number_token(sc, &n) == 0 ? put_number(sc, &n, start) : -1;
}

static int scan_scalar(struct scan *sc)
{
    if (sc->p >= sc->end)
        return fail(sc, sc->p, "a value is missing at the end");
    if (*sc->p == '"')
        return scan_string(sc);
    if (*sc->p == '-' || (*sc->p >= '0' && *sc->p <= '9'))
        return scan_number(sc);
    if (*sc->p == 0)
        return fail(sc, sc->p, "a NUL byte outside a string");
    return scan_literal(sc);
}

/* An object key and its colon, at sc->p (after whitespace). */
static int scan_key(struct scan *sc)
{
    skip_ws(sc);
    if (sc->p >= sc->end || *sc->p != '"')
        return fail(sc, sc->p,
                    sc->p < sc->end && *sc->p == 0 ? "a NUL byte outside a string"
                                                   : "an object key (a string) was expected");
    if (scan_string(sc) != 0)
        return -1;
    skip_ws(sc);
    if (sc->p >= sc->end || *sc->p != ':')
        return fail(sc, sc->p, "':' was expected after an object key");
    oq_buf_add(&sc->out, ":", 1);
    sc->p++;
    return 0;
}

/* After a value inside containers: ',' (then a key in an object) or the closing bracket(s).
 * Returns 1 when a value must follow, 0 when the document ended, -1 on error. */
static int after_value(struct scan *sc, const char *stack, int *depth)
{
    for (;;) {
        skip_ws(sc);
        if (*depth == 0)
            return sc->p == sc->end ? 0
                                    : fail(sc, sc->p,
                                           *sc->p == 0 ? "a NUL byte after the JSON value"
                                                       : "text after the JSON value");
        char top = stack[*depth - 1], close = top == '{' ? '}' : ']';
        if (sc->p < sc->end && *sc->p == ',') {
            oq_buf_add(&sc->out, ",", 1);
            sc->p++;
            return top == '{' ? (scan_key(sc) == 0 ? 1 : -1) : 1;
        }
        if (sc->p >= sc->end || *sc->p != close)
            return fail(sc, sc->p,
                        sc->p < sc->end && *sc->p == 0 ? "a NUL byte outside a string"
                                                       : "',' or a closing bracket was expected");
        oq_buf_add(&sc->out, &close, 1);
        sc->p++;
        (*depth)--;
    }
}

/* The whole document, without recursion. */
static int scan_doc(struct scan *sc, int max_depth)
{
    char stack[JSONLOAD_DEPTH_STORED + 1];
    int depth = 0;
    for (;;) {
        skip_ws(sc);
        if (sc->p < sc->end && (*sc->p == '{' || *sc->p == '[')) {
            char open = (char)*sc->p, close = open == '{' ? '}' : ']';
            if (depth >= max_depth)
                return fail(sc, sc->p,
                            max_depth == JSONLOAD_DEPTH_MAX ? "JSON nested deeper than 64 levels"
                                                            : "JSON nested too deep");
            stack[depth++] = open;
            oq_buf_add(&sc->out, &open, 1);
            sc->p++;
            skip_ws(sc);
            if (sc->p < sc->end && *sc->p == close) {
                oq_buf_add(&sc->out, &close, 1);
                sc->p++;
                depth--;
            } else if (open == '[' || scan_key(sc) == 0) {
                continue;
            } else {
                return -1;
            }
        } else if (scan_scalar(sc) != 0) {
            return -1;
        }
        int next = after_value(sc, stack, &depth);
        if (next <= 0)
            return next;
    }
}

static void position(const struct scan *sc, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const unsigned char *p = sc->s; p < sc->at; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

json_t *jsonload(const char *data, size_t len, unsigned flags, struct err *e)
{
    struct scan sc = {.s = (const unsigned char *)data,
                      .p = (const unsigned char *)data,
                      .end = (const unsigned char *)data + len,
                      .budget = JSONLOAD_GROWTH_MAX};
    json_t *j = NULL;
    int line, col;
    if (scan_doc(&sc, flags & JSONLOAD_DEEP ? JSONLOAD_DEPTH_STORED : JSONLOAD_DEPTH_MAX) != 0) {
        position(&sc, &line, &col);
        err_set(e, ERR_INVALID_JSON, "invalid JSON at line %d column %d: %s", line, col, sc.why);
    } else {
        json_error_t je;
        j = json_loadb(sc.out.data, sc.out.len,
                       JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
        if (j == NULL)
            err_set(e, ERR_INVALID_JSON, "invalid JSON: %s", je.text);
        else if ((flags & JSONLOAD_OBJECT) && !json_is_object(j)) {
            err_set(e, ERR_INVALID_JSON, "the body must be a JSON object");
            json_decref(j);
            j = NULL;
        }
    }
    free(sc.out.data);
    return j;
}

json_t *jsonload_text(const char *text)
{
    struct err e = {0};
    return text ? jsonload(text, strlen(text), JSONLOAD_DEEP, &e) : NULL;
}

const char *jsonnum_text(const json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) < 2 || json_string_value(v)[0] != '\0')
        return NULL;
    const char *t = json_string_value(v) + 1;
    size_t n = json_string_length(v) - 1;
    return strspn(t, "-.0123456789") == n ? t : NULL; /* only what put_number writes */
}

bool jsonnum_is(const json_t *v)
{
    return json_is_number(v) || jsonnum_text(v) != NULL;
}

bool jsonstr_is(const json_t *v)
{
    return json_is_string(v) && jsonnum_text(v) == NULL;
}

bool jsonnum_is_integral(const json_t *v)
{
    const char *t = jsonnum_text(v);
    if (t == NULL)
        return json_is_integer(v) || (json_is_real(v) && isfinite(json_real_value(v)) &&
                                      json_real_value(v) == floor(json_real_value(v)));
    const char *point = strchr(t, '.');
    return point == NULL || strspn(point + 1, "0") == strlen(point + 1);
}

double jsonnum_value(const json_t *v)
{
    const char *t = jsonnum_text(v);
    return t ? strtod(t, NULL) : json_number_value(v);
}
