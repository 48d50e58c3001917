#include "api/prefer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/park/waiters.h"

#define PREFER_JOINED_MAX 2048 /* the Prefer fields joined; headers are capped at 32 KiB */

/* The value of the first "return" preference in value (quotes dropped) into out, or "". */
static void first_return(const char *value, char *out, size_t len)
{
    out[0] = '\0';
    for (const char *p = value; p != NULL && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, "return", 6) != 0)
            continue;
        const char *q = p + 6;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q != '=')
            continue;
        q++;
        while (*q == ' ' || *q == '\t' || *q == '"')
            q++;
        size_t n = strcspn(q, "\" \t;,");
        snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), q);
        return;
    }
}

void prefer_parse_value(const char *value, struct prefer *out)
{
    *out = (struct prefer){.wait_s = waiters_prefer_wait(value), .ret = PREFER_RETURN_DEFAULT};
    char ret[32];
    first_return(value, ret, sizeof(ret));
    if (strcasecmp(ret, "minimal") == 0)
        out->ret = PREFER_RETURN_MINIMAL;
    else if (strcasecmp(ret, "representation") == 0)
        out->ret = PREFER_RETURN_REPRESENTATION;
}

struct joined {
    char text[PREFER_JOINED_MAX];
    size_t len;
};

static enum MHD_Result add_field(void *arg, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    struct joined *j = arg;
    if (key == NULL || value == NULL || strcasecmp(key, "Prefer") != 0)
        return MHD_YES;
    int n = snprintf(j->text + j->len, sizeof(j->text) - j->len, "%s%s", j->len ? ", " : "", value);
    if (n > 0)
        j->len = j->len + (size_t)n < sizeof(j->text) ? j->len + (size_t)n : sizeof(j->text) - 1;
    return MHD_YES;
}

void prefer_parse(struct request *r, struct prefer *out)
{
    struct joined j = {.len = 0};
    j.text[0] = '\0';
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_field, &j);
    prefer_parse_value(j.len ? j.text : NULL, out);
}

const char *prefer_applied(const struct prefer *p, bool wait_applied)
{
    static const char *const applied[2][3] = {
        {NULL, "return=minimal", "return=representation"},
        {"wait", "wait, return=minimal", "wait, return=representation"},
    };
    return applied[wait_applied ? 1 : 0][p->ret];
}
