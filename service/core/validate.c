#include "core/validate.h"

#include <math.h>
#include <string.h>

#include "core/jsonload.h"

static const char *type_name(enum vtype t)
{
    static const char *const names[] = {"a string",  "an integer", "a number",  "a boolean",
                                        "an object", "an array",   "any value", "a UUID string"};
    return names[t];
}

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(s, *list) == 0)
            return true;
    }
    return false;
}

static int check_string(const json_t *v, const struct field_rule *r, struct err *e)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (r->type == V_UUID && !oq_is_uuid(s))
        return err_field(e, ERR_INVALID_REQUEST, r->name, "%s must be a UUID", r->name);
    if (r->max > 0 && ((long long)len < r->min || (long long)len > r->max))
        return err_field(e, ERR_INVALID_REQUEST, r->name,
                         "%s must be a string of %lld to %lld characters", r->name, r->min, r->max);
    if (strlen(s) != len)
        return err_field(e, ERR_INVALID_REQUEST, r->name, "%s must not contain NUL", r->name);
    if (r->one_of != NULL && !in_list(s, r->one_of))
        return err_field(e, ERR_INVALID_REQUEST, r->name, "%s has an unsupported value", r->name);
    return 0;
}

static int check_number(const json_t *v, const struct field_rule *r, struct err *e)
{
    double d = jsonnum_value(v);
    if (r->type == V_INT && !jsonnum_is_integral(v))
        return err_field(e, ERR_INVALID_REQUEST, r->name, "%s must be an integer", r->name);
    if ((r->min != 0 || r->max != 0) && (d < (double)r->min || d > (double)r->max))
        return err_field(e, ERR_INVALID_REQUEST, r->name, "%s must be from %lld to %lld", r->name,
                         r->min, r->max);
    return 0;
}

static bool has_type(const json_t *v, enum vtype t)
{
    switch (t) {
    case V_STRING:
    case V_UUID:
        return jsonstr_is(v);
    case V_INT:
        return jsonnum_is_integral(v);
    case V_NUMBER:
        return jsonnum_is(v);
    case V_BOOL:
        return json_is_boolean(v);
    case V_OBJECT:
        return json_is_object(v);
    case V_ARRAY:
        return json_is_array(v);
    case V_ANY:
        return true;
    }
    return false;
}

static int check_field(const json_t *v, const struct field_rule *r, struct err *e)
{
    if (!has_type(v, r->type))
        return err_field(e, ERR_INVALID_REQUEST, r->name, "%s must be %s", r->name,
                         type_name(r->type));
    if (jsonnum_is(v))
        return check_number(v, r, e);
    if (jsonstr_is(v))
        return check_string(v, r, e);
    return 0;
}

static const struct field_rule *find_rule(const struct field_rule *rules, const char *key)
{
    for (; rules->name; rules++) {
        if (strcmp(rules->name, key) == 0)
            return rules;
    }
    return NULL;
}

int validate_object(const json_t *obj, const struct field_rule *rules, bool allow_unknown,
                    struct err *e)
{
    if (!json_is_object(obj))
        return err_set(e, ERR_INVALID_REQUEST, "expected a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (!allow_unknown && find_rule(rules, key) == NULL)
            return err_field(e, ERR_INVALID_REQUEST, key, "unknown field %s", key);
    }
    for (const struct field_rule *r = rules; r->name; r++) {
        v = json_object_get(obj, r->name);
        if (v == NULL || (json_is_null(v) && r->nullable)) {
            if (r->required)
                return err_field(e, ERR_INVALID_REQUEST, r->name, "%s is required", r->name);
            continue;
        }
        if (check_field(v, r, e) != 0)
            return -1;
    }
    return 0;
}

const char *validate_str(const json_t *obj, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : def;
}

bool validate_is_printable(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}
