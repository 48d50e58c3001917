/* The one loader of JSON text (request bodies, stored payloads, upstream answers): strict
 * RFC 8259, and numbers kept as data.
 *
 * A strict scanner checks the text (exactly one value with optional whitespace around it, no
 * NUL byte outside a string, valid UTF-8 and escapes, no \u0000, nesting limit) and rewrites
 * every number to the text PostgreSQL's jsonb renders for it (numeric_in + numeric_out:
 * 100.0 stays 100.0, 1.50 stays 1.50, -0 is 0, 1e2 is 100, 1e400 is a 1 with 400 zeros).
 * Integers that fit jansson's json_int_t load as JSON integers; every other number loads as a
 * "number marker": a jansson string of a NUL byte followed by that text. No other string can
 * start with NUL (raw and escaped NUL are refused), jsontext() writes a marker back as the bare
 * number, and jsonnum_*() read its value. Numbers PostgreSQL cannot store (more than 131072
 * digits before the point or 16383 after it) are refused, and numbers written out in full may
 * add at most JSONLOAD_GROWTH_MAX bytes to a document. */
#ifndef OQ_JSONLOAD_H
#define OQ_JSONLOAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define JSONLOAD_DEPTH_MAX 64          /* request bodies */
#define JSONLOAD_DEPTH_STORED 2000     /* within jansson's own limit (2048 values) */
#define JSONLOAD_GROWTH_MAX (1u << 20) /* bytes numbers written out in full may add */

enum jsonload_flags {
    JSONLOAD_OBJECT = 1, /* the value must be an object */
    JSONLOAD_DEEP = 2,   /* nesting up to JSONLOAD_DEPTH_STORED instead of JSONLOAD_DEPTH_MAX */
};

/* Loads data[0..len). Returns a new reference, or NULL with *e set (ERR_INVALID_JSON, the
 * message naming line and column). Duplicate object keys are refused. */
json_t *jsonload(const char *data, size_t len, unsigned flags, struct err *e);

/* Loads NUL-terminated text written by this service or PostgreSQL (any value, deep);
 * NULL when it is not JSON. New reference. */
json_t *jsonload_text(const char *text);

/* True when v is a JSON number: an integer, a real, or a number marker. */
bool jsonnum_is(const json_t *v);
/* The value of a number as a double (a marker beyond the double range is +-HUGE_VAL or +-0);
 * 0 when v is not a number. Like json_number_value for every number the loader makes. */
double jsonnum_value(const json_t *v);
/* True when v is a number with an integral value (5, 5.0, 2e1; not 1.5 or -1e-400, nor a
 * double beyond the range). Read from the text, so no rounding makes 1e-400 an integer. */
bool jsonnum_is_integral(const json_t *v);
/* True when v is a JSON string in the document (not a number marker): use it, never
 * json_is_string, on loaded JSON. */
bool jsonstr_is(const json_t *v);
/* The number's text of a marker (borrowed, without the NUL), or NULL when v is not one. */
const char *jsonnum_text(const json_t *v);

#endif
