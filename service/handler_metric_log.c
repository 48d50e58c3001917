/* metric_log: metrics of a run, batched per upstream and endpoint on delivery. */
#include <stdio.h>

#include "handlers.h"
#include "validate.h"

static const struct field_rule rules[] = {
    {.name = "run_id", .type = V_STRING, .required = true, .min = 1, .max = 200},
    {.name = "step", .type = V_INT, .min = 0, .max = 9007199254740991LL},
    {.name = "metrics", .type = V_OBJECT, .required = true},
    {.name = "endpoint", .type = V_STRING, .min = 1, .max = 2048},
    {.name = "upstream", .type = V_STRING, .min = 1, .max = 100},
    {.name = NULL},
};

int metric_log_validate(const json_t *payload, const struct config *cfg, struct err *e)
{
    if (validate_object(payload, rules, true, e) != 0)
        return -1;
    const json_t *metrics = json_object_get(payload, "metrics");
    if (json_object_size(metrics) == 0)
        return err_field(e, ERR_INVALID_REQUEST, "metrics", "metrics must not be empty");
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)metrics, name, v) {
        if (!json_is_number(v)) {
            char field[160];
            snprintf(field, sizeof(field), "metrics.%s", name);
            return err_field(e, ERR_INVALID_REQUEST, field, "metric values must be numbers");
        }
    }
    return target_validate(payload, cfg, e);
}
