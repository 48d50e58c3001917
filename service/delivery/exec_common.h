/* Helpers every executor shares (handlers and conflict resolution): a permanent failure with
 * its message, and a payload's headers as request lines. */
#ifndef OQ_EXEC_COMMON_H
#define OQ_EXEC_COMMON_H

#include <jansson.h>

#include "core/common.h"
#include "core/job.h"

/* Sets *res to a permanent failure with a message. */
void exec_fail(struct exec_result *res, const char *fmt, ...) OQ_PRINTF(2, 3);

struct config;
/* The upstream the payload names (target_upstream), or NULL with *res a permanent failure
 * saying it is no longer configured. Borrowed from cfg. */
const struct upstream *exec_upstream(const struct config *cfg, const json_t *payload,
                                     struct exec_result *res);

/* "Name: value" lines from a payload's headers object (and If-Match when if_match is set),
 * NULL-terminated. Returns a new array; free with exec_free_lines. */
char **exec_header_lines(const json_t *payload);
void exec_free_lines(char **lines);

#endif
