/* Header values the service parses: Prefer (wait=, return=), Last-Event-ID, Authorization (the key
 * lookup), and a file upload's Content-Type check. */
#include "fuzz/common.h"
#include "engine/events.h"
#include "core/validate.h"
#include "api/park/waiters.h"
#include "api/prefer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_load_config();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    double wait = waiters_prefer_wait(s);
    if (wait > 30)
        abort();
    struct prefer pref;
    prefer_parse_value(s, &pref);
    if (pref.wait_s > 30 || pref.ret > PREFER_RETURN_REPRESENTATION)
        abort();
    struct event_pos pos;
    (void)events_parse_id(s, &pos);
    (void)config_key_role(&fuzz_cfg, s);
    (void)validate_is_printable(s);
    free(s);
    return 0;
}
