/* /api/offline/files: files reach the service first, then file_upload / model_push
 * operations name them by file_id. An upload is streamed into the store as it arrives: one
 * transaction from its first byte to its last, at most one chunk in memory, and nothing left
 * behind when the client goes away or the body is refused. */
#include <stdlib.h>
#include <string.h>

#include "api/endpoints.h"
#include "api/reply.h"
#include "api/routes.h"
#include "app.h"
#include "core/validate.h"
#include "store/files.h"

/* An upload in progress (r->sink_state): the connection it holds and the file being written. */
struct upload {
    struct db_conn *c;
    struct files_writer w;
};

static json_t *file_json(const struct stored_file *f)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:s}", "file_id", f->id, "size", (json_int_t)f->size,
                     "sha256", f->sha256, "content_type", f->content_type, "created_at",
                     f->created_at);
}

/* The stored Content-Type: the client's, or application/octet-stream. NULL with *e when it
 * cannot be stored. */
static const char *content_type(struct request *r, struct err *e)
{
    const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL || *ct == '\0')
        ct = "application/octet-stream";
    if (strlen(ct) > 200 || !validate_is_printable(ct)) {
        err_field(e, ERR_INVALID_REQUEST, "Content-Type", "Content-Type is not acceptable");
        return NULL;
    }
    return ct;
}

/* The first piece: a connection and a transaction for the file. */
static struct upload *upload_begin(struct request *r, struct err *e)
{
    const char *ct = content_type(r, e);
    struct db_conn *c = ct ? db_acquire(&r->app->db, e) : NULL;
    if (c == NULL)
        return NULL;
    struct upload *u = oq_calloc(1, sizeof(*u));
    u->c = c;
    if (files_begin(&u->w, c, ct, e) != 0) {
        db_release(&r->app->db, c);
        free(u);
        return NULL;
    }
    return u;
}

static int sink_write(struct request *r, const char *p, size_t n, struct err *e)
{
    if (r->sink_state == NULL)
        r->sink_state = upload_begin(r, e);
    struct upload *u = r->sink_state;
    return u != NULL ? files_write(&u->w, p, n, e) : -1;
}

static void sink_abort(struct request *r)
{
    struct upload *u = r->sink_state;
    if (u == NULL)
        return;
    files_abort(&u->w);
    db_release(&r->app->db, u->c);
    free(u);
    r->sink_state = NULL;
}

const struct body_sink api_files_sink = {.write = sink_write, .abort = sink_abort};

int api_files_create(struct request *r, struct err *e)
{
    struct upload *u = r->sink_state;
    if (u == NULL) /* no byte came: the checks the first byte would have made, then this */
        return content_type(r, e) == NULL ? -1
                                          : err_set(e, ERR_INVALID_REQUEST, "the file is empty");
    struct stored_file f = {0};
    int rc = files_commit(&u->w, &f, e);
    sink_abort(r); /* the writer is closed: this gives the connection back */
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
