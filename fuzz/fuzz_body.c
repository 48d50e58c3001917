/* Request bodies of every JSON endpoint: parsing with the service's rules (object, no duplicate
 * keys, depth limit, numbers as PostgreSQL renders them: written back they load the same), each
 * route's field rules, and for enqueue and batch every field and
 * per-type payload rule. */
#include <jansson.h>

#include "fuzz/common.h"
#include "core/jsonload.h"
#include "core/jsontext.h"
#include "store/ops.h"
#include "api/parse.h"
#include "api/routes.h"
#include "core/validate.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_load_config();
    return 0;
}

static void one(const json_t *body)
{
    struct op_new op = {0};
    struct err e = {0};
    if (api_parse_enqueue(body, &fuzz_cfg, &op, &e) == 0)
        (void)ops_is_simple(&op);
    api_op_new_free(&op);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct err e = {0};
    json_t *body = api_parse_json_body((const char *)data, size, &e);
    if (body == NULL)
        return 0;
    /* what the loader accepts, the writer writes so that it loads back the same */
    char *text = jsontext(body);
    json_t *again = jsonload_text(text);
    char *text2 = again ? jsontext(again) : NULL;
    if (again == NULL || strcmp(text, text2) != 0 || !json_equal(body, again))
        abort();
    free(text2);
    free(text);
    json_decref(again);
    for (const struct route *rt = routes_table(); rt->method != NULL; rt++) {
        struct err re = {0};
        if (rt->rules != NULL)
            (void)validate_object(body, rt->rules, false, &re);
    }
    const json_t *ops = json_object_get(body, "operations");
    size_t i;
    json_t *item;
    if (json_is_array(ops)) {
        json_array_foreach(ops, i, item) one(item);
    } else {
        one(body);
    }
    json_decref(body);
    return 0;
}
