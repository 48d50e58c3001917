/* Outbound HTTP (delivery/outbound.c): Retry-After and Standard Webhooks signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/upstreams.h"
#include "delivery/outbound.h"

static void test_retry_after(void **state)
{
    time_t now = 1763000000; /* Thu, 13 Nov 2025 02:13:20 GMT */
    assert_true(outbound_retry_after("120", now) == 120);
    assert_true(outbound_retry_after("0", now) == 0);
    assert_true(outbound_retry_after("Thu, 13 Nov 2025 02:13:50 GMT", now) == 30);
    assert_true(outbound_retry_after("Thu, 13 Nov 2025 02:00:00 GMT", now) == 0); /* past */
    assert_true(outbound_retry_after("soon", now) < 0);
    assert_true(outbound_retry_after("12abc", now) < 0);
}

static void test_signature_matches_standard_webhooks(void **state)
{
    /* The example of the Standard Webhooks specification. */
    const char *body = "{\"test\": 2432232314}";
    char sig[128];
    const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    size_t key_len = 0;
    unsigned char *key = upstreams_signing_key(secret, strlen(secret), &key_len);
    assert_non_null(key);
    outbound_sign(key, key_len, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig,
                  sizeof(sig));
    upstreams_free_key(key, key_len);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_signature_matches_standard_webhooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
