/* time_parse_rfc3339 on any bytes (as a NUL-terminated string of exactly that length, so
 * ASan sees a read past its end): it never reads beyond the string, and what it accepts has
 * the RFC 3339 shape and parses to a time within the years 0000 to 9999. */
#include <math.h>

#include "fuzz/common.h"
#include "core/time.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    double t = 0;
    if (time_parse_rfc3339(s, &t) == 0) {
        if (strlen(s) < 20 || !isfinite(t) || t < -62167219200.0 - 86400 ||
            t > 253402300800.0 + 86400)
            abort();
    }
    free(s);
    return 0;
}
