/* GET /api/offline/queue's query: status, cursor, operation_type and limit, split on '&'. */
#include "fuzz/common.h"
#include "api/cursor.h"
#include "store/ops.h"
#include "api/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    char *field[4] = {NULL, NULL, NULL, NULL};
    char *p = s;
    for (int i = 0; i < 4 && p != NULL; i++) {
        field[i] = p;
        p = strchr(p, '&');
        if (p != NULL)
            *p++ = '\0';
    }
    struct list_query q = {0};
    char statuses[128];
    struct err e = {0};
    (void)api_parse_list_query(field[0], field[1], field[2], field[3], &q, statuses,
                               sizeof(statuses), &e);
    int prio;
    long long seq;
    if (cursor_decode(s, &prio, &seq) == 0) { /* a cursor that decodes encodes back the same */
        char again[CURSOR_MAX];
        cursor_encode(prio, seq, again);
        if (strcmp(again, s) != 0)
            abort();
    }
    free(s);
    return 0;
}
