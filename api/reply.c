#include "api/reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

void reply_header(struct request *r, const char *name, const char *value)
{
    OQ_ASSERT(r->n_extra < HTTP_MAX_EXTRA_HEADERS);
    r->extra[r->n_extra].name = name;
    r->extra[r->n_extra].value = oq_strdup(value);
    r->n_extra++;
}

static bool has_extra(const struct request *r, const char *name)
{
    for (int i = 0; i < r->n_extra; i++) {
        if (strcasecmp(r->extra[i].name, name) == 0)
            return true;
    }
    return false;
}

void reply_location(struct request *r, const char *collection, const char *id)
{
    char loc[128];
    snprintf(loc, sizeof(loc), "%s%s", collection, id);
    reply_header(r, "Location", loc);
}

static void add_common_headers(struct request *r, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->close_after)
        MHD_add_response_header(resp, "Connection", "close");
    if (r->cors_origin != NULL) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors_origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                "X-Request-Id, Location, ETag, Retry-After, Idempotent-Replayed");
        if (strcmp(r->cors_origin, "*") != 0)
            MHD_add_response_header(resp, "Vary", "Origin");
    }
    for (int i = 0; i < r->n_extra; i++)
        MHD_add_response_header(resp, r->extra[i].name, r->extra[i].value);
}

/* Queues resp as r's one reply (the common headers, then content_type unless NULL; a stream
 * also tells proxies not to hold it back) and drops this reference to it: libmicrohttpd keeps
 * its own until the reply is sent. */
static int queue_reply(struct request *r, unsigned status, struct MHD_Response *resp,
                       const char *content_type, bool is_stream)
{
    add_common_headers(r, resp);
    if (content_type != NULL)
        MHD_add_response_header(resp, "Content-Type", content_type);
    if (is_stream)
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    r->status = status;
    r->replied = true;
    enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ok == MHD_YES ? 0 : -1;
}

static int send_buffer(struct request *r, unsigned status, char *data, size_t len,
                       const char *content_type)
{
    OQ_ASSERT(!r->replied);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, data, data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        free(data);
        return -1;
    }
    return queue_reply(r, status, resp, content_type, false);
}

int reply_stream(struct request *r, unsigned status, const char *content_type,
                 ssize_t (*crc)(void *, uint64_t, char *, size_t), void *cls,
                 void (*free_cb)(void *))
{
    OQ_ASSERT(!r->replied);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, crc, cls, free_cb);
    if (resp == NULL) {
        free_cb(cls);
        return -1;
    }
    return queue_reply(r, status, resp, content_type, true);
}

void reply_deferred(struct request *r)
{
    char *body = r->deferred_body;
    r->deferred_body = NULL;
    reply_json_text(r, r->deferred_status, body);
}

int reply_json_text(struct request *r, unsigned status, char *text)
{
    return send_buffer(r, status, text, strlen(text), "application/json");
}

int reply_text(struct request *r, unsigned status, const char *content_type, char *text)
{
    return send_buffer(r, status, text, strlen(text), content_type);
}

int reply_json(struct request *r, unsigned status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    OQ_ASSERT(text != NULL);
    return reply_json_text(r, status, text);
}

int reply_empty(struct request *r, unsigned status)
{
    return send_buffer(r, status, NULL, 0, NULL);
}

int reply_err(struct request *r, const struct err *e)
{
    const char *message = e->message;
    if (e->detail[0] != '\0' && e->code != ERR_INTERNAL)
        log_json(LOG_WARN, "request refused",
                 json_pack("{s:s, s:s, s:s}", "request_id", r->request_id, "code",
                           err_wire_code(e->code), "detail", e->detail));
    if (e->code == ERR_INTERNAL) {
        log_json(LOG_ERROR, "internal error",
                 json_pack("{s:s, s:s}", "request_id", r->request_id, "detail",
                           e->detail[0] != '\0' ? e->detail : e->message));
        message = "internal error";
    }
    unsigned status = err_http_status(e->code);
    if ((status == 503 || status == 429) && !has_extra(r, "Retry-After"))
        reply_header(r, "Retry-After", REPLY_RETRY_AFTER_S);
    json_t *err = json_pack("{s:s, s:s}", "code", err_wire_code(e->code), "message", message);
    if (e->field[0] != '\0')
        json_object_set_new(err, "field", json_string(e->field));
    return reply_json(r, status, json_pack("{s:o}", "error", err));
}
