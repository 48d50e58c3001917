/* W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent header, parsed,
 * made and derived. No I/O; thread-safe. */
#ifndef OQ_TRACE_H
#define OQ_TRACE_H

#include <stdbool.h>
#include <stddef.h>

#define TRACE_ID_HEX 32
#define TRACE_SPAN_HEX 16
#define TRACE_PARENT_LEN 55 /* "00-" trace "-" span "-" flags */
#define TRACE_STATE_MAX 512 /* the spec's 32 members of at most 256 bytes, cut to what we keep */

struct trace {
    char trace_id[TRACE_ID_HEX + 1];
    char span_id[TRACE_SPAN_HEX + 1];
    char flags[3];
};

/* Fills *t from a traceparent header value; false when it is not a valid one (then the spec
 * says: ignore it and start a new trace). A version above 00 is read as 00 is (its first four
 * fields), as the spec asks of a version this code does not know. */
bool trace_parse(const char *header, struct trace *t);

/* A new trace with a random trace id and span id, flags 01 (sampled). */
void trace_new(struct trace *t);

/* The same trace, flags kept, with a new random span id: a request this service makes. */
void trace_child(const struct trace *parent, struct trace *child);

/* The trace an operation's deliveries join: its stored traceparent, or for a row stored without
 * one (or with an id that is no UUID, as a metric batch's key) the trace whose id is the
 * operation id without its dashes (a random one for a key that is no UUID). */
void trace_of_operation(const char *traceparent, const char *op_id, struct trace *t);

/* "00-<trace_id>-<span_id>-<flags>" into out (at least TRACE_PARENT_LEN + 1 bytes). */
void trace_format(const struct trace *t, char *out, size_t len);

/* The columns a trace is stored in (migrations/009): the trace id as a uuid's text, the span id
 * as a signed 64-bit decimal (its bits), the flags as a decimal. */
struct trace_columns {
    char id[37];
    char span[24];
    char flags[4];
};
void trace_to_columns(const struct trace *t, struct trace_columns *c);

/* A tracestate value fit to be stored and sent again: at most TRACE_STATE_MAX bytes of
 * printable ASCII (no control character can reach an outbound header). */
bool trace_state_ok(const char *s);

#endif
