/* Request paths against the route table: path ids, traversal, odd bytes. */
#include "fuzz/common.h"
#include "api/routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *path = fuzz_cstr(data, size);
    static const char *const methods[] = {"GET", "POST", "DELETE", "PUT", "OPTIONS"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        char id[64];
        bool known = false;
        const struct route *rt = routes_match(methods[i], path, id, sizeof(id), &known);
        if (rt != NULL && strchr(rt->pattern, '{') != NULL && strlen(id) >= sizeof(id))
            abort();
    }
    free(path);
    return 0;
}
