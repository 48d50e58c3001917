/* Helpers the executors share: payload headers as curl lines. */
#ifndef OQ_EXEC_COMMON_H
#define OQ_EXEC_COMMON_H

#include <jansson.h>

/* "Name: value" lines from a payload's headers object (and If-Match when if_match is set),
 * NULL-terminated; free with exec_free_lines. */
char **exec_header_lines(const json_t *payload);
void exec_free_lines(char **lines);

#endif
