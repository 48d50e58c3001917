/* Files compiled into the binary by cmake/embed.cmake. */
#ifndef OQ_EMBED_H
#define OQ_EMBED_H

#include <stddef.h>

struct embedded_file {
    const char *name;
    const char *data; /* NUL-terminated */
    size_t len;
};

/* Sorted by name, ended by {0}. */
extern const struct embedded_file embedded_migrations[];
extern const struct embedded_file embedded_dashboard[];

#endif
