/* multipart/form-data bodies (RFC 7578). The parts around a file are built in memory; the
 * file's bytes are read from their source as the body is sent (and, for a signature, read once
 * before), so a body costs its form fields and boundaries, never the file. */
#ifndef OQ_MULTIPART_H
#define OQ_MULTIPART_H

#include <jansson.h>
#include <stddef.h>

#include "core/common.h"

struct multipart {
    char boundary[64];
    char content_type[128]; /* multipart/form-data; boundary=... */
    struct oq_buf b;        /* the body, or with a file: what comes before its bytes */
    struct oq_buf tail;     /* with a file: what comes after its bytes */
    bool has_file;
    long long file_len;
};

void multipart_init(struct multipart *m);
/* Adds one part per string member of fields (may be NULL). Before multipart_file. */
void multipart_fields(struct multipart *m, const json_t *fields);
/* The file's part, of len bytes that the stream reads (multipart_stream); at most one. */
void multipart_file(struct multipart *m, const char *field, const char *filename,
                    const char *content_type, long long len);
void multipart_finish(struct multipart *m);
void multipart_free(struct multipart *m);

/* Where a file's bytes come from: read copies up to n of the next ones into buf and returns
 * how many (0 at the end) or -1 (the source keeps its error); rewind goes back to the first. */
struct multipart_source {
    long long (*read)(void *arg, void *buf, size_t n);
    void (*rewind)(void *arg);
    void *arg;
};

/* A finished body read in order: its parts, and the file's bytes from src in between. */
struct multipart_stream {
    const struct multipart *m; /* borrowed */
    struct multipart_source src;
    long long pos; /* bytes of the body read since the start */
};

void multipart_stream_init(struct multipart_stream *s, const struct multipart *m,
                           const struct multipart_source *src);
/* Bytes of the whole body (Content-Length). */
long long multipart_stream_len(const struct multipart_stream *s);
/* The next up to n bytes of the body into buf (arg is the stream): how many, 0 at the end,
 * -1 when the file's source failed, or the file was shorter than announced. */
long long multipart_stream_read(void *arg, char *buf, size_t n);
/* Back to the body's first byte (arg is the stream). */
void multipart_stream_rewind(void *arg);

#endif
