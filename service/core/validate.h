/* Field rules as data: one table per JSON object shape, checked by one function. */
#ifndef OQ_VALIDATE_H
#define OQ_VALIDATE_H

#include <jansson.h>

#include "core/err.h"

enum vtype { V_STRING, V_INT, V_NUMBER, V_BOOL, V_OBJECT, V_ARRAY, V_ANY, V_UUID };

struct field_rule {
    const char *name;
    enum vtype type;
    bool required;
    bool nullable;             /* JSON null accepted (treated as absent) */
    long long min, max;        /* V_INT/V_NUMBER: value range; V_STRING: length range */
    const char *const *one_of; /* V_STRING: allowed values, NULL-terminated */
};

/* Checks obj against rules (ended by a rule with name NULL). Unknown keys are refused unless
 * allow_unknown. On failure sets *e (ERR_INVALID_REQUEST, field = the key) and returns -1. */
int validate_object(const json_t *obj, const struct field_rule *rules, bool allow_unknown,
                    struct err *e) OQ_MUSTCHECK;

/* Returns the string at key, or def when absent or null. Borrowed. */
const char *validate_str(const json_t *obj, const char *key, const char *def);

/* True when s holds no control characters (CR, LF, NUL ...). */
bool validate_is_printable(const char *s);

#endif
