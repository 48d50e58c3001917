/* Where an operation may be sent (target.c) and how a signing secret becomes a key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/url.h"
#include "handlers/handlers.h"
#include "delivery/target.h"

static void test_dot_segments(void **state)
{
    const char *with[] = {"/..",           "/.",          "/../admin", "/a/./b",        "/a/..",
                          "/%2e%2e/admin", "/%2E./x",     "/a/%2e",    "/a/.%2E/b",     "/a/..%2fb",
                          "/a/..%2Fb",     "/a%2f..%2fb", "/a\\..\\b", "/a/%2e%2e%5cb", "/a/..?x",
                          "/a/.#f",        "..",          ".",         "/a//../b",      NULL};
    const char *without[] = {"/",          "/a",       "/a..b",          "/.a",
                             "/a.",        "/...",     "/a/.../b",       "/%2e%2e%2e",
                             "/a?x=/../y", "/a#/../y", "/a%252e%252e/b", "/a//b",
                             "",           NULL};
    for (const char *const *p = with; *p; p++) {
        if (!target_has_dot_segment(*p))
            fail_msg("%s: a dot segment not seen", *p);
    }
    for (const char *const *p = without; *p; p++) {
        if (target_has_dot_segment(*p))
            fail_msg("%s: no dot segment here", *p);
    }
}

static void test_url_parse(void **state)
{
    const struct {
        const char *url, *origin, *path;
    } ok[] = {
        {"http://Up.Example:8080/Tenant-A/x", "http://up.example:8080", "/Tenant-A/x"},
        {"HTTPS://up.example:443/a", "https://up.example", "/a"},
        {"http://up.example:80", "http://up.example", "/"},
        {"http://up.example/a/../b?q=1#f", "http://up.example", "/a/../b"},
        {"http://[::1]:9/x", "http://[::1]:9", "/x"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char origin[512];
        char *path = NULL;
        assert_int_equal(url_parse(ok[i].url, origin, sizeof(origin), &path), 0);
        assert_string_equal(origin, ok[i].origin);
        assert_string_equal(path, ok[i].path);
        free(path);
    }
    const char *bad[] = {"ftp://up.example/",
                         "//up.example/x",
                         "/x",
                         "http://",
                         "http://user@up.example/",
                         "http://up.example:pw@evil.example/",
                         "http:/up.example/x",
                         "http://up example/",
                         "http://127.1:9/",
                         "http://2130706433:9/",
                         "http://0x7f000001:9/",
                         "http://up.example:/x",
                         NULL};
    for (const char *const *p = bad; *p; p++) {
        char origin[512];
        if (url_parse(*p, origin, sizeof(origin), NULL) == 0)
            fail_msg("%s: accepted as %s", *p, origin);
    }
}

static struct config_live live;

static void with_config(struct config *c, const char *upstreams)
{
    memset(c, 0, sizeof(*c));
    memset(&live, 0, sizeof(live));
    c->upstreams_raw = (char *)upstreams;
    char msg[256];
    assert_int_equal(
        upstreams_parse(c->upstreams_raw, "", &live.upstreams, &live.n_upstreams, msg, sizeof(msg)),
        0);
    atomic_init(&c->live, &live);
}

static void test_endpoints_stay_below_the_base_path(void **state)
{
    struct config c;
    with_config(&c, "default=http://up.example/tenant-a/,root=http://root.example:8080");
    const struct {
        const char *payload;
        bool ok;
    } cases[] = {
        {"{\"endpoint\":\"/ok/x\"}", true},
        {"{\"endpoint\":\"/\"}", true},
        {"{\"endpoint\":\"http://up.example/tenant-a\"}", true},
        {"{\"endpoint\":\"http://UP.example:80/tenant-a/x?y=/../z\"}", true},
        {"{\"endpoint\":\"http://up.example/tenant-a/\"}", true},
        {"{\"endpoint\":\"/../admin\"}", false},
        {"{\"endpoint\":\"/%2e%2e/admin\"}", false},
        {"{\"endpoint\":\"http://up.example/tenant-b/x\"}", false},
        {"{\"endpoint\":\"http://up.example/tenant-abc\"}", false},
        {"{\"endpoint\":\"http://up.example/\"}", false},
        {"{\"endpoint\":\"http://up.example/tenant-a/../tenant-b\"}", false},
        {"{\"endpoint\":\"http://up.example/tenant-a/%2e%2e/tenant-b\"}", false},
        {"{\"endpoint\":\"https://up.example/tenant-a/x\"}", false},
        {"{\"endpoint\":\"http://up.example:8080/tenant-a/x\"}", false},
        {"{\"endpoint\":\"http://up.example@evil.example/tenant-a/x\"}", false},
        {"{\"endpoint\":\"//up.example/tenant-a/x\"}", false},
        {"{\"upstream\":\"root\",\"endpoint\":\"http://root.example:8080/any/x\"}", true},
        {"{\"upstream\":\"root\",\"endpoint\":\"http://root.example:8080\"}", true},
        {"{\"upstream\":\"root\",\"endpoint\":\"http://root.example:8080/a/./b\"}", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *p = json_loads(cases[i].payload, 0, NULL);
        struct err e = {0};
        int rc = target_validate(p, &c, &e);
        if ((rc == 0) != cases[i].ok)
            fail_msg("%s: %s (%s)", cases[i].payload, rc == 0 ? "accepted" : "refused", e.message);
        if (rc != 0)
            assert_string_equal(e.field, "endpoint");
        json_decref(p);
    }
    upstreams_free(live.upstreams, live.n_upstreams);
}

static void test_forbidden_headers(void **state)
{
    const char *names[] = {"Host",
                           "content-length",
                           "Transfer-Encoding",
                           "CONNECTION",
                           "Keep-Alive",
                           "te",
                           "Trailer",
                           "Upgrade",
                           "Expect",
                           "Proxy-Authorization",
                           "proxy-x",
                           "Idempotency-Key",
                           "webhook-id",
                           "Webhook-Timestamp",
                           "WEBHOOK-SIGNATURE",
                           NULL};
    for (const char *const *n = names; *n; n++) {
        json_t *h = json_pack("{s:s}", *n, "x");
        struct err e = {0};
        assert_int_equal(target_check_headers(h, &e), -1);
        char want[128];
        snprintf(want, sizeof(want), "headers.%s", *n);
        assert_string_equal(e.field, want);
        json_decref(h);
    }
    const char *fine[] = {"Authorization", "X-Proxy", "Proxy",        "Tex",
                          "Hosts",         "Webhook", "Content-Type", NULL};
    for (const char *const *n = fine; *n; n++) {
        json_t *h = json_pack("{s:s}", *n, "x");
        struct err e = {0};
        if (target_check_headers(h, &e) != 0)
            fail_msg("%s refused: %s", *n, e.message);
        json_decref(h);
    }
}

static void test_signing_keys(void **state)
{
    const struct {
        const char *secret;
        const char *key; /* NULL: malformed */
        size_t key_len;
    } cases[] = {
        {"whsec_YWJj", "abc", 3},
        {"whsec_YWJjZA==", "abcd", 4},
        {"whsec_YWJjZGU=", "abcde", 5},
        {"whsec_AAAA", "\0\0\0", 3},
        {"plain text secret", "plain text secret", 17},
        {"whsec_", NULL, 0},
        {"", NULL, 0},
        {"whsec_YWJ", NULL, 0},
        {"whsec_YWJjZA", NULL, 0},
        {"whsec_YW=j", NULL, 0},
        {"whsec_YWJjZA=A", NULL, 0},
        {"whsec_YWJjZA===", NULL, 0},
        {"whsec_====", NULL, 0},
        {"whsec_YWJj!!!!", NULL, 0},
        {"whsec_ YWJj", NULL, 0},
        {"whsec_YWJj\n", NULL, 0},
        {"whsec_YWJjZB==", NULL, 0},
        {"whsec_YWJjZGV=", NULL, 0},
        {"whsec_-_-_", NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = 0;
        unsigned char *key = upstreams_signing_key(cases[i].secret, strlen(cases[i].secret), &n);
        if (cases[i].key == NULL) {
            if (key != NULL)
                fail_msg("%s: accepted", cases[i].secret);
            continue;
        }
        if (key == NULL)
            fail_msg("%s: refused", cases[i].secret);
        assert_int_equal(n, cases[i].key_len);
        assert_memory_equal(key, cases[i].key, n);
        upstreams_free_key(key, n);
    }
    /* any length: 3000 bytes of key from 4000 characters */
    char *big = malloc(6 + 4000 + 1);
    memcpy(big, "whsec_", 6);
    for (int i = 0; i < 1000; i++)
        memcpy(big + 6 + 4 * i, "QUJD", 4);
    big[6 + 4000] = '\0';
    size_t n = 0;
    unsigned char *key = upstreams_signing_key(big, strlen(big), &n);
    assert_non_null(key);
    assert_int_equal(n, 3000);
    assert_memory_equal(key + 2997, "ABC", 3);
    upstreams_free_key(key, n);
    free(big);
    /* a NUL inside the text is not a shorter secret */
    assert_null(upstreams_signing_key("whsec_YWJj\0junk", 15, &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dot_segments),
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_endpoints_stay_below_the_base_path),
        cmocka_unit_test(test_forbidden_headers),
        cmocka_unit_test(test_signing_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
