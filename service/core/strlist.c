#include "core/strlist.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

char **strlist_split(const char *s, size_t *n)
{
    char **items = NULL;
    *n = 0;
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            char **grown = realloc(items, (*n + 1) * sizeof(*items));
            OQ_ASSERT(grown != NULL);
            items = grown;
            items[(*n)++] = oq_strndup(a, (size_t)(b - a));
        }
        p = comma ? comma + 1 : end;
    }
    return items;
}

void strlist_free(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}
