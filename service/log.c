#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static enum log_level min_level = LOG_INFO;

int log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < OQ_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_set_level(enum log_level level)
{
    min_level = level;
}

bool log_enabled(enum log_level level)
{
    return level >= min_level;
}

void log_json(enum log_level level, const char *msg, json_t *fields)
{
    if (!log_enabled(level)) {
        json_decref(fields);
        return;
    }
    char ts[40];
    oq_utc_now(ts, sizeof(ts), 3);
    json_t *line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "msg", msg);
    if (fields != NULL)
        json_object_update_missing(line, fields);
    json_decref(fields);
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(line);
    if (text == NULL)
        return;
    size_t len = strlen(text);
    text[len] = '\n';
    fwrite(text, 1, len + 1, stderr); /* one write: lines from threads never interleave */
    free(text);
}

void log_fmt(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_json(level, msg, NULL);
}
