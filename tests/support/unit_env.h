/* Unit tests that load settings (config_load): a known environment. Clears the OFFLINEQ_*
 * variables the tests set, sets a database URL (config_load requires one), then env's
 * NAME, value pairs (NULL-terminated; env may be NULL). */
#ifndef OQ_TEST_UNIT_ENV_H
#define OQ_TEST_UNIT_ENV_H

#include <stdlib.h>

static inline void with_env(const char *const *env)
{
    static const char *const names[] = {"OFFLINEQ_DATABASE_URL", "OFFLINEQ_LISTEN",
                                        "OFFLINEQ_API_KEYS",     "OFFLINEQ_UPSTREAMS",
                                        "OFFLINEQ_WORKERS",      "OFFLINEQ_CORS_ORIGINS"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unsetenv(names[i]);
    setenv("OFFLINEQ_DATABASE_URL", "postgresql:///x", 1);
    for (; env && *env; env += 2)
        setenv(env[0], env[1], 1);
}

#endif
