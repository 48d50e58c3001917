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

/* Adds the payload's form fields, then what the caller adds, then the file, and sends it. */
void file_upload_send(struct exec_ctx *ctx, const struct job *job, const json_t *extra,
                      struct exec_result *res)
{
    const json_t *p = job->payload;
    const struct upstream *u = exec_upstream(ctx->cfg, p, res);
    if (u == NULL)
        return;
    struct err e = {0};
    struct stored_file f = {0};
    struct db_conn *c = db_acquire(ctx->db, &e);
    int rc = c ? files_load(c, validate_str(p, "file_id", ""), &f, &e) : -1;
    if (c != NULL)
        db_release(ctx->db, c);
    if (rc != 0) {
        if (e.code == ERR_NOT_FOUND || e.code == ERR_UNDECRYPTABLE) { /* no retry helps */
            exec_fail(res, "%s", e.message);
        } else { /* the database is away: try again later, as for a network error */
            res->outcome = OUTCOME_RELEASE;
            res->delay_s = DB_AWAY_RETRY_S;
            snprintf(res->error, sizeof(res->error), "could not load the file: %s", e.message);
        }
        return;
    }
    struct multipart m;
    multipart_init(&m);
    multipart_fields(&m, json_object_get(p, "form"));
    multipart_fields(&m, extra);
    multipart_file(&m, validate_str(p, "field", "file"), validate_str(p, "filename", "file"),
                   f.content_type, f.data, (size_t)f.size);
    multipart_finish(&m);
    struct out_request rq = {.u = u,
                             .method = "POST",
                             .endpoint = validate_str(p, "endpoint", "/"),
                             .body = m.b.data,
                             .body_len = m.b.len,
                             .content_type = m.content_type,
                             .idempotency_key = job->id};
    deliver(ctx, &rq, res);
    multipart_free(&m);
    free(f.data);
}

void file_upload_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res)
{
    file_upload_send(ctx, job, NULL, res);
}
