/* Shared by the fuzz targets: a configuration like a real deployment's, loaded once. */
#ifndef OQ_FUZZ_COMMON_H
#define OQ_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

static struct config fuzz_cfg;

static inline void fuzz_load_config(void)
{
    static const char *const env[][2] = {
        {"OFFLINEQ_DATABASE_URL", "postgresql:///fuzz"},
        {"OFFLINEQ_UPSTREAMS", "default=http://127.0.0.1:9/api,registry=https://models.example"},
        {"OFFLINEQ_API_KEYS", "read-key-1:read,write-key-1:write,admin-key-1:admin"},
    };
    for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
        setenv(env[i][0], env[i][1], 1);
    char msg[512];
    char *argv[] = {"fuzz", NULL};
    if (config_load(&fuzz_cfg, 1, argv, msg, sizeof(msg)) != CONFIG_OK)
        abort();
}

/* data as a NUL-terminated string (malloc'd): libFuzzer's buffer is not terminated. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
