#include "api/cursor.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURSOR_VERSION "v1." /* the plain text's prefix */

void cursor_encode(int priority, long long seq, char out[CURSOR_MAX])
{
    char plain[48];
    int n = snprintf(plain, sizeof(plain), CURSOR_VERSION "%d.%lld", priority, seq);
    int len = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)plain, n);
    /* base64url without padding */
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

static int parse_ll(const char *s, char stop, long long min, long long max, long long *v,
                    const char **end)
{
    char *e = NULL;
    if (!((*s >= '0' && *s <= '9') || *s == '-'))
        return -1;
    long long n = strtoll(s, &e, 10);
    if (e == s || *e != stop || n < min || n > max)
        return -1;
    *v = n;
    *end = e;
    return 0;
}

int cursor_decode(const char *s, int *priority, long long *seq)
{
    size_t len = strlen(s);
    if (len == 0 || len > 40 || len % 4 == 1)
        return -1;
    char b64[48];
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '+' || ch == '/' || ch == '=')
            return -1;
        b64[i] = ch == '-' ? '+' : ch == '_' ? '/' : ch;
    }
    size_t padded = len;
    while (padded % 4)
        b64[padded++] = '=';
    unsigned char plain[48];
    int n = EVP_DecodeBlock(plain, (const unsigned char *)b64, (int)padded);
    if (n < 0)
        return -1;
    n -= (int)(padded - len); /* EVP_DecodeBlock counts padding as zero bytes */
    if (n <= 3 || memchr(plain, '\0', (size_t)n) != NULL)
        return -1;
    plain[n] = '\0';
    const char *p = (const char *)plain;
    long long prio;
    const char *end;
    size_t v = sizeof(CURSOR_VERSION) - 1;
    if (strncmp(p, CURSOR_VERSION, v) != 0 || parse_ll(p + v, '.', -1000, 1000, &prio, &end) != 0 ||
        parse_ll(end + 1, '\0', 0, 9223372036854775807LL, seq, &end) != 0)
        return -1;
    *priority = (int)prio;
    return 0;
}
