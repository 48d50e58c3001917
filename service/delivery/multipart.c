#include "delivery/multipart.h"
#include "core/jsonload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* After the file's part head, the rest goes to the tail (sent after the file's bytes). */
static void append(struct multipart *m, const void *p, size_t n)
{
    oq_buf_add(m->has_file ? &m->tail : &m->b, p, n);
}

static void append_str(struct multipart *m, const char *s)
{
    append(m, s, strlen(s));
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
                    const char *content_type, long long len)
{
    OQ_ASSERT(!m->has_file);
    part_head(m, field);
    append_str(m, "; filename=");
    append_quoted(m, filename);
    append_str(m, "\r\nContent-Type: ");
    append_str(m, content_type);
    append_str(m, "\r\n\r\n");
    m->has_file = true; /* the file's bytes go here, read by the stream */
    m->file_len = len;
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
    free(m->tail.data);
    m->b.data = m->tail.data = NULL;
}

void multipart_stream_init(struct multipart_stream *s, const struct multipart *m,
                           const struct multipart_source *src)
{
    s->m = m;
    s->src = *src;
    s->pos = 0;
}

long long multipart_stream_len(const struct multipart_stream *s)
{
    return (long long)s->m->b.len + s->m->file_len + (long long)s->m->tail.len;
}

/* Copies from a part held in memory that spans [start, start + len) of the body. */
static size_t from_memory(struct multipart_stream *s, const struct oq_buf *part, long long start,
                          char *buf, size_t n)
{
    size_t off = (size_t)(s->pos - start);
    size_t take = part->len - off < n ? part->len - off : n;
    memcpy(buf, part->data + off, take);
    s->pos += (long long)take;
    return take;
}

long long multipart_stream_read(void *arg, char *buf, size_t n)
{
    struct multipart_stream *s = arg;
    const struct multipart *m = s->m;
    long long head = (long long)m->b.len, file_end = head + m->file_len;
    size_t got = 0;
    while (got < n && s->pos < multipart_stream_len(s)) {
        if (s->pos < head) {
            got += from_memory(s, &m->b, 0, buf + got, n - got);
        } else if (s->pos < file_end) {
            long long want =
                file_end - s->pos < (long long)(n - got) ? file_end - s->pos : (long long)(n - got);
            long long r = s->src.read(s->src.arg, buf + got, (size_t)want);
            if (r <= 0)
                return -1; /* failed, or shorter than announced */
            s->pos += r;
            got += (size_t)r;
        } else {
            got += from_memory(s, &m->tail, file_end, buf + got, n - got);
        }
    }
    return (long long)got;
}

void multipart_stream_rewind(void *arg)
{
    struct multipart_stream *s = arg;
    if (s->m->has_file)
        s->src.rewind(s->src.arg);
    s->pos = 0;
}
