#include "core/vocab.h"

#include <string.h>

#define NAME2(e, name) [e] = name,
#define NAME3(e, name, live) [e] = name,
const char *const op_status_names[] = {OQ_OP_STATUSES(NAME3)[OP_N_STATUSES] = NULL};
const char *const strategy_names[] = {OQ_STRATEGIES(NAME2)[STRATEGY_N] = NULL};

const char *op_status_name(enum op_status s)
{
    return (unsigned)s < OP_N_STATUSES ? op_status_names[s] : "unknown";
}

const char *strategy_name(enum strategy s)
{
    return (unsigned)s < STRATEGY_N ? strategy_names[s] : "unknown";
}

static int find(const char *const *names, const char *name)
{
    for (int i = 0; name != NULL && names[i] != NULL; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

int op_status_parse(const char *name, enum op_status *out)
{
    int i = find(op_status_names, name);
    if (i < 0)
        return -1;
    *out = (enum op_status)i;
    return 0;
}

int strategy_parse(const char *name, enum strategy *out)
{
    int i = find(strategy_names, name);
    if (i < 0)
        return -1;
    *out = (enum strategy)i;
    return 0;
}
