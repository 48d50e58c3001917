/* /api/offline/files: files reach the service first, then file_upload / model_push
 * operations name them by file_id. */
#include <string.h>

#include "api/endpoints.h"
#include "api/reply.h"
#include "api/routes.h"
#include "app.h"
#include "core/validate.h"
#include "store/files.h"

static json_t *file_json(const struct stored_file *f)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:s}", "file_id", f->id, "size", (json_int_t)f->size,
                     "sha256", f->sha256, "content_type", f->content_type, "created_at",
                     f->created_at);
}

int api_files_create(struct request *r, struct err *e)
{
    const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL || *ct == '\0')
        ct = "application/octet-stream";
    if (strlen(ct) > 200 || !validate_is_printable(ct))
        return err_field(e, ERR_INVALID_REQUEST, "Content-Type", "Content-Type is not acceptable");
    if (r->body.len == 0)
        return err_set(e, ERR_INVALID_REQUEST, "the file is empty");
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return -1;
    struct stored_file f = {0};
    int rc = files_store(c, ct, r->body.data, r->body.len, &f, e);
    db_release(&r->app->db, c);
    if (rc != 0)
        return -1;
    reply_location(r, "/api/offline/files/", f.id);
    return reply_json(r, 201, file_json(&f));
}

int api_files_get(struct request *r, struct err *e)
{
    const char *id = routes_path_uuid(r, "file", e);
    struct db_conn *c = id ? db_acquire(&r->app->db, e) : NULL;
    if (c == NULL)
        return -1;
    struct stored_file f = {0};
    int rc = files_meta(c, id, &f, e);
    db_release(&r->app->db, c);
    return rc != 0 ? -1 : reply_json(r, 200, file_json(&f));
}
