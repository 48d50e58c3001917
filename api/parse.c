#include "api/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/cursor.h"
#include "core/jsonload.h"
#include "core/pgarray.h"
#include "core/jsontext.h"
#include "core/validate.h"
#include "core/vocab.h"
#include "handlers/handlers.h"
#include "store/ops.h"

#define DEPENDS_MAX 100
#define LIST_DEFAULT 50
#define LIST_MAX 1000
#define YEAR_S (365 * 24 * 60 * 60) /* the longest delay, lifetime or retry window */

json_t *api_parse_json_body(const char *data, size_t len, struct err *e)
{
    return jsonload(data, len, JSONLOAD_OBJECT, e);
}

static const struct field_rule enqueue_rules[] = {
    {.name = "operation_type", .type = V_STRING, .required = true, .min = 1, .max = 100},
    {.name = "payload", .type = V_OBJECT, .required = true},
    {.name = "priority", .type = V_INT, .min = -1000, .max = 1000},
    {.name = "dedup_key", .type = V_STRING, .nullable = true, .min = 1, .max = 255},
    {.name = "group_key", .type = V_STRING, .nullable = true, .min = 1, .max = 255},
    {.name = "max_attempts", .type = V_INT, .min = 1, .max = 1000},
    {.name = "delay_s", .type = V_NUMBER, .min = 0, .max = YEAR_S},
    {.name = "depends_on", .type = V_ARRAY},
    {.name = "expires_in_s", .type = V_NUMBER, .min = 0, .max = YEAR_S},
    {.name = "max_retry_duration_s", .type = V_INT, .min = 1, .max = YEAR_S},
    {.name = "conflict_strategy", .type = V_STRING, .nullable = true, .one_of = strategy_names},
    {.name = NULL},
};

/* depends_on: up to DEPENDS_MAX operation ids, as a uuid[] literal (new, in *out). */
static int parse_depends_on(const json_t *list, char **out, struct err *e)
{
    size_t n = json_array_size(list);
    *out = NULL;
    if (list == NULL || n == 0)
        return 0;
    if (n > DEPENDS_MAX)
        return err_field(e, ERR_INVALID_REQUEST, "depends_on", "depends_on holds at most %d ids",
                         DEPENDS_MAX);
    struct pgarray ids;
    pgarray_init(&ids);
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(list, i));
        if (!oq_is_uuid(id)) {
            pgarray_close(&ids);
            return err_field(e, ERR_INVALID_REQUEST, "depends_on",
                             "depends_on must be a list of operation ids");
        }
        pgarray_add(&ids, id);
    }
    *out = pgarray_finish(&ids);
    return 0;
}

/* The service's own payload keys: a sealed payload's envelope ("$enc", "$enc2") and the id it
 * was sealed for ("$id", which the row takes on insert: migration 004). A client's payload that
 * held one would be stored as something else, so it is refused, as offlineq.enqueue() does. */
static int check_reserved_keys(const json_t *payload, struct err *e)
{
    static const char *const reserved[] = {"$id", "$enc", "$enc2"};
    for (size_t i = 0; i < OQ_ARRAY_LEN(reserved); i++) {
        if (json_object_get(payload, reserved[i]) != NULL)
            return err_field(e, ERR_INVALID_REQUEST, reserved[i],
                             "payload key %s is the service's own (sealed payloads)", reserved[i]);
    }
    return 0;
}

/* The operation type's handler, after the payload passed its rules and had no reserved key;
 * NULL with *e set otherwise. */
static const struct handler *check_payload(const json_t *body, const char *type,
                                           const struct config *cfg, struct err *e)
{
    const struct handler *h = handlers_find(type);
    if (h == NULL) {
        err_field(e, ERR_INVALID_REQUEST, "operation_type", "unknown operation_type \"%.100s\"",
                  type);
        return NULL;
    }
    const json_t *payload = json_object_get(body, "payload");
    if (check_reserved_keys(payload, e) != 0 || h->validate(payload, cfg, e) != 0) {
        err_prefix_field(e, "payload");
        return NULL;
    }
    return h;
}

int api_parse_enqueue(const json_t *body, const struct config *cfg, struct op_new *op,
                      struct err *e)
{
    if (validate_object(body, enqueue_rules, false, e) != 0)
        return -1;
    const char *type = validate_str(body, "operation_type", NULL);
    const struct handler *h = check_payload(body, type, cfg, e);
    if (h == NULL)
        return -1;
    const json_t *delay = json_object_get(body, "delay_s");
    const json_t *expires = json_object_get(body, "expires_in_s");
    char *depends_on = NULL;
    if (parse_depends_on(json_object_get(body, "depends_on"), &depends_on, e) != 0)
        return -1;
    *op = (struct op_new){
        .operation_type = type,
        .priority = (int)jsonnum_value(json_object_get(body, "priority")),
        .dedup_key = validate_str(body, "dedup_key", NULL),
        .group_key = validate_str(body, "group_key", NULL),
        .max_attempts = json_object_get(body, "max_attempts")
                            ? (int)jsonnum_value(json_object_get(body, "max_attempts"))
                            : cfg->max_attempts, /* the one default: OFFLINEQ_MAX_ATTEMPTS */
        .delay_s = delay ? jsonnum_value(delay) : -1,
        .depends_on = depends_on,
        .expires_in_s = expires ? jsonnum_value(expires) : -1,
        .max_retry_duration_s = (int)jsonnum_value(json_object_get(body, "max_retry_duration_s")),
        .conflict_strategy = validate_str(body, "conflict_strategy", NULL),
        .stores_file = h->stores_file,
    };
    op->payload_json = jsontext(json_object_get(body, "payload"));
    OQ_ASSERT(op->payload_json != NULL);
    return 0;
}

void api_op_new_free(struct op_new *op)
{
    free(op->payload_json);
    free(op->depends_on);
}

/* "status must be a comma-separated list of pending, in_progress, ...": the names from the
 * vocabulary, so the message lists exactly what parse_statuses accepts. */
static int bad_statuses(struct err *e)
{
    char names[128];
    size_t o = 0;
    names[0] = '\0';
    for (const char *const *st = op_status_names; *st && o < sizeof(names); st++)
        o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", o ? ", " : "", *st);
    return err_field(e, ERR_INVALID_REQUEST, "status",
                     "status must be a comma-separated list of %s", names);
}

/* "pending,failed" -> "{pending,failed}" after checking every name. */
static int parse_statuses(const char *s, char *out, size_t len, struct err *e)
{
    struct pgarray a;
    pgarray_init(&a);
    const char *p = s;
    do {
        size_t n = strcspn(p, ",");
        bool known = false;
        for (const char *const *st = op_status_names; *st && !known; st++)
            known = strlen(*st) == n && strncmp(*st, p, n) == 0;
        if (!known || pgarray_len(&a) + n + 1 >= len) {
            pgarray_close(&a);
            return bad_statuses(e);
        }
        pgarray_addn(&a, p, n);
        p += n;
    } while (*p++ == ',');
    char *literal = pgarray_finish(&a);
    snprintf(out, len, "%s", literal);
    free(literal);
    return 0;
}

static int parse_limit(const char *s, int *limit, struct err *e)
{
    char *end = NULL;
    long v = s ? strtol(s, &end, 10) : LIST_DEFAULT;
    if (s != NULL && (end == s || *end != '\0' || *s == '+' || *s == ' '))
        v = -1;
    if (v < 1 || v > LIST_MAX)
        return err_field(e, ERR_INVALID_REQUEST, "limit", "limit must be an integer from 1 to %d",
                         LIST_MAX);
    *limit = (int)v;
    return 0;
}

int api_parse_list_query(const char *status, const char *cursor, const char *type,
                         const char *limit, struct list_query *q, char *statuses_buf, size_t len,
                         struct err *e)
{
    if (parse_statuses(status && *status ? status : "pending", statuses_buf, len, e) != 0 ||
        parse_limit(limit, &q->limit, e) != 0)
        return -1;
    q->statuses = statuses_buf;
    q->operation_type = type && *type ? type : NULL;
    if (cursor != NULL) {
        if (cursor_decode(cursor, &q->after_priority, &q->after_seq) != 0)
            return err_field(e, ERR_INVALID_REQUEST, "cursor",
                             "cursor is not one this service returned");
        q->has_cursor = true;
    }
    return 0;
}
