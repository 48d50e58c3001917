#include "delivery/exec_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/validate.h"
#include "delivery/target.h"

#define IF_MATCH_PREFIX "If-Match: "

void exec_fail(struct exec_result *res, const char *fmt, ...)
{
    va_list ap;
    res->outcome = OUTCOME_FAILED;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof(res->error), fmt, ap);
    va_end(ap);
}

const struct upstream *exec_upstream(const struct config *cfg, const json_t *payload,
                                     struct exec_result *res)
{
    const struct upstream *u = target_upstream(cfg, payload);
    if (u == NULL)
        exec_fail(res, "upstream \"%s\" is no longer configured",
                  validate_str(payload, "upstream", "default"));
    return u;
}

/* A new "name: value" line. */
static char *header_line(const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + sizeof(": ");
    char *line = oq_malloc(len);
    snprintf(line, len, "%s: %s", name, value);
    return line;
}

char **exec_header_lines(const json_t *payload)
{
    const json_t *headers = json_object_get(payload, "headers");
    const char *if_match = json_string_value(json_object_get(payload, "if_match"));
    size_t n = json_object_size(headers) + 2, i = 0; /* + If-Match + the NULL */
    char **lines = oq_calloc(n, sizeof(char *));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)headers, k, v)
    {
        const char *value = json_string_value(v); /* a string: checked at enqueue and delivery */
        lines[i++] = header_line(k, value ? value : "");
    }
    if (if_match != NULL) {
        size_t len = sizeof(IF_MATCH_PREFIX) + strlen(if_match);
        lines[i] = oq_malloc(len);
        snprintf(lines[i++], len, IF_MATCH_PREFIX "%s", if_match);
    }
    return lines;
}

void exec_free_lines(char **lines)
{
    for (char **p = lines; p && *p; p++)
        free(*p);
    free(lines);
}
