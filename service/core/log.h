/* One JSON object per line on stderr. Thread-safe; a line is written with one call. */
#ifndef OQ_LOG_H
#define OQ_LOG_H

#include <jansson.h>

#include "core/common.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parses "debug" | "info" | "warn" | "error"; returns -1 for anything else. */
int log_level_parse(const char *s, enum log_level *out);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Writes {"ts","level","msg",...fields}. Steals fields (an object, may be NULL). */
void log_json(enum log_level level, const char *msg, json_t *fields);

/* A JSON string of s (client text: a path, a method) where each byte that is not part of valid
 * UTF-8 is written as the four characters \xHH; "" for NULL. Returns a new reference. */
json_t *log_text(const char *s);

void log_fmt(enum log_level level, const char *fmt, ...) OQ_PRINTF(2, 3);

#define log_debug(...) log_fmt(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_fmt(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_fmt(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_fmt(LOG_ERROR, __VA_ARGS__)

#endif
