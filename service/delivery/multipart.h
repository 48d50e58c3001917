/* multipart/form-data bodies built in memory (RFC 7578), so their exact bytes can be signed. */
#ifndef OQ_MULTIPART_H
#define OQ_MULTIPART_H

#include <jansson.h>
#include <stddef.h>

#include "core/common.h"

struct multipart {
    char boundary[64];
    char content_type[128]; /* multipart/form-data; boundary=... */
    struct oq_buf b;        /* the body */
};

void multipart_init(struct multipart *m);
/* Adds one part per string member of fields (may be NULL). */
void multipart_fields(struct multipart *m, const json_t *fields);
void multipart_file(struct multipart *m, const char *field, const char *filename,
                    const char *content_type, const void *data, size_t len);
void multipart_finish(struct multipart *m);
void multipart_free(struct multipart *m);

#endif
