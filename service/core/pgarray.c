#include "core/pgarray.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void pgarray_init(struct pgarray *a)
{
    *a = (struct pgarray){0};
    oq_buf_str(&a->b, "{");
}

/* Would array_in(3) read these n bytes as anything but themselves? */
static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0 || (n == sizeof("NULL") - 1 && strncasecmp(s, "NULL", n) == 0))
        return true;
    for (size_t i = 0; i < n; i++) {
        if (strchr("{}\",\\ \t\n\r\v\f", s[i]) != NULL || s[i] == '\0')
            return true;
    }
    return false;
}

void pgarray_addn(struct pgarray *a, const char *item, size_t n)
{
    if (a->n++ > 0)
        oq_buf_str(&a->b, ",");
    if (!needs_quotes(item, n)) {
        oq_buf_add(&a->b, item, n);
        return;
    }
    oq_buf_str(&a->b, "\"");
    for (size_t i = 0; i < n; i++) {
        if (item[i] == '"' || item[i] == '\\')
            oq_buf_str(&a->b, "\\");
        oq_buf_add(&a->b, &item[i], 1);
    }
    oq_buf_str(&a->b, "\"");
}

void pgarray_add(struct pgarray *a, const char *item)
{
    pgarray_addn(a, item, strlen(item));
}

size_t pgarray_len(const struct pgarray *a)
{
    return a->b.len + 1; /* the closing brace */
}

char *pgarray_finish(struct pgarray *a)
{
    oq_buf_str(&a->b, "}");
    char *s = a->b.data;
    *a = (struct pgarray){0};
    return s;
}

void pgarray_close(struct pgarray *a)
{
    free(a->b.data);
    *a = (struct pgarray){0};
}
