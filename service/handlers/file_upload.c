/* file_upload: a stored file delivered as multipart/form-data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonload.h"
#include "core/validate.h"
#include "delivery/exec_common.h"
#include "delivery/multipart.h"
#include "delivery/outbound.h"
#include "delivery/target.h"
#include "handlers/handlers.h"
#include "store/db.h"
#include "store/files.h"

/* Seconds before an operation whose file could not be read (database away) is looked at again;
 * no attempt is used. */
#define DB_AWAY_RETRY_S 1

static const struct field_rule rules[] = {
    {.name = "file_id", .type = V_UUID, .required = true},
    RULE_ENDPOINT(true),
    RULE_UPSTREAM,
    {.name = "field", .type = V_STRING, .min = 1, .max = 200},
    {.name = "filename", .type = V_STRING, .min = 1, .max = 255},
    {.name = "form", .type = V_OBJECT},
    {.name = NULL},
};

/* form values become multipart parts: strings only, no control characters in names. */
static int check_form(const json_t *form, struct err *e)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)form, name, v)
    {
        if (!jsonstr_is(v) || !validate_is_printable(name))
            return err_field(e, ERR_INVALID_REQUEST, "form",
                             "form must map printable names to strings");
    }
    return 0;
}

int file_upload_validate(const json_t *payload, const struct config *cfg, struct err *e)
{
    if (validate_object(payload, rules, true, e) != 0)
        return -1;
    const json_t *form = json_object_get(payload, "form");
    if (form != NULL && check_form(form, e) != 0)
        return -1;
    const char *filename = validate_str(payload, "filename", "");
    if (!validate_is_printable(filename))
        return err_field(e, ERR_INVALID_REQUEST, "filename", "filename must be printable");
    return target_validate(payload, cfg, e);
}

/* The stored file as the multipart stream's source: read chunk by chunk as the body is sent. */
struct file_source {
    struct files_reader rd;
    struct err e; /* the first read failure */
    bool failed;
};

static long long source_read(void *arg, void *buf, size_t n)
{
    struct file_source *fs = arg;
    long long got = files_read(&fs->rd, buf, n, &fs->e);
    fs->failed = fs->failed || got < 0;
    return got;
}

static void source_rewind(void *arg)
{
    files_rewind(&((struct file_source *)arg)->rd);
}

/* A file that cannot be read: gone or altered fails (no retry helps), the database away is
 * looked at again later, as for a network error, without using an attempt. */
static void file_unreadable(const struct err *e, struct exec_result *res)
{
    json_decref(res->result);
    res->result = NULL;
    if (e->code == ERR_NOT_FOUND || e->code == ERR_UNDECRYPTABLE) {
        exec_fail(res, "%s", e->message);
    } else {
        res->outcome = OUTCOME_RELEASE;
        res->delay_s = DB_AWAY_RETRY_S;
        snprintf(res->error, sizeof(res->error), "could not load the file: %s", e->message);
    }
}

/* Adds the payload's form fields, then what the caller adds, then the file, and sends it: the
 * body is a stream of the parts with the file's chunks read from the database in between,
 * once for the signature (when the upstream signs) and once to send. */
void file_upload_send(struct exec_ctx *ctx, const struct job *job, const json_t *extra,
                      struct exec_result *res)
{
    const json_t *p = job->payload;
    const struct upstream *u = exec_upstream(ctx->cfg, p, res);
    if (u == NULL)
        return;
    struct file_source fs = {0};
    if (files_open(&fs.rd, ctx->db, validate_str(p, "file_id", ""), &fs.e) != 0) {
        file_unreadable(&fs.e, res);
        return;
    }
    struct multipart m;
    multipart_init(&m);
    multipart_fields(&m, json_object_get(p, "form"));
    multipart_fields(&m, extra);
    multipart_file(&m, validate_str(p, "field", "file"), validate_str(p, "filename", "file"),
                   fs.rd.meta.content_type, fs.rd.meta.size);
    multipart_finish(&m);
    struct multipart_stream ms;
    multipart_stream_init(&ms, &m, &(struct multipart_source){source_read, source_rewind, &fs});
    struct out_stream body = {.len = multipart_stream_len(&ms),
                              .read = multipart_stream_read,
                              .rewind = multipart_stream_rewind,
                              .arg = &ms};
    struct out_request rq = {.u = u,
                             .method = "POST",
                             .endpoint = validate_str(p, "endpoint", "/"),
                             .stream = &body,
                             .content_type = m.content_type,
                             .idempotency_key = job->id,
                             .traceparent = job->traceparent,
                             .tracestate = job->tracestate};
    deliver(ctx, &rq, res);
    if (fs.failed)
        file_unreadable(&fs.e, res);
    multipart_free(&m);
    files_close(&fs.rd);
}

void file_upload_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res)
{
    file_upload_send(ctx, job, NULL, res);
}
