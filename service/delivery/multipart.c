#include "delivery/multipart.h"
#include "core/jsonload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

static void append(struct multipart *m, const void *p, size_t n)
{
    oq_buf_add(&m->b, p, n);
}

static void append_str(struct multipart *m, const char *s)
{
    oq_buf_str(&m->b, s);
}

/* A name or filename inside quotes: '"' becomes %22, as browsers send it; CR/LF never
 * get here (validated at enqueue). */
static void append_quoted(struct multipart *m, const char *s)
{
    append_str(m, "\"");
    for (; *s; s++) {
        if (*s == '"')
            append_str(m, "%22");
        else
            append(m, s, 1);
    }
    append_str(m, "\"");
}

void multipart_init(struct multipart *m)
{
    memset(m, 0, sizeof(*m));
    char id[37];
    oq_uuid(id);
    snprintf(m->boundary, sizeof(m->boundary), "offlineq-%s", id);
    snprintf(m->content_type, sizeof(m->content_type), "multipart/form-data; boundary=%s",
             m->boundary);
}

static void part_head(struct multipart *m, const char *name)
{
    append_str(m, "--");
    append_str(m, m->boundary);
    append_str(m, "\r\nContent-Disposition: form-data; name=");
    append_quoted(m, name);
}

void multipart_fields(struct multipart *m, const json_t *fields)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)fields, k, v)
    {
        if (!jsonstr_is(v))
            continue;
        part_head(m, k);
        append_str(m, "\r\n\r\n");
        append(m, json_string_value(v), json_string_length(v));
        append_str(m, "\r\n");
    }
}

void multipart_file(struct multipart *m, const char *field, const char *filename,
                    const char *content_type, const void *data, size_t len)
{
    part_head(m, field);
    append_str(m, "; filename=");
    append_quoted(m, filename);
    append_str(m, "\r\nContent-Type: ");
    append_str(m, content_type);
    append_str(m, "\r\n\r\n");
    append(m, data, len);
    append_str(m, "\r\n");
}

void multipart_finish(struct multipart *m)
{
    append_str(m, "--");
    append_str(m, m->boundary);
    append_str(m, "--\r\n");
}

void multipart_free(struct multipart *m)
{
    free(m->b.data);
    m->b.data = NULL;
}
