/* multipart bodies as streams (delivery/multipart.c): the same bytes however they are read,
 * the exact length up front, a rewind starts over, a failing or short source fails the read;
 * and the Standard Webhooks signature over a stream equals the one over the same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/multipart.h"
#include "delivery/outbound.h"

/* A file in memory as the stream's source; fail_at >= 0 makes reads past it fail, and
 * short_by drops that many bytes off its end. */
struct mem_src {
    const unsigned char *data;
    size_t len, pos;
    long long fail_at;
    size_t short_by;
    int rewinds;
};

static long long mem_read(void *arg, void *buf, size_t n)
{
    struct mem_src *m = arg;
    if (m->fail_at >= 0 && (long long)m->pos >= m->fail_at)
        return -1;
    size_t end = m->len - m->short_by;
    size_t take = end - m->pos < n ? end - m->pos : n;
    memcpy(buf, m->data + m->pos, take);
    m->pos += take;
    return (long long)take;
}

static void mem_rewind(void *arg)
{
    struct mem_src *m = arg;
    m->pos = 0;
    m->rewinds++;
}

static unsigned char *file_bytes(size_t n)
{
    unsigned char *d = malloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = (unsigned char)(i * 31 + 7);
    return d;
}

/* The body in one piece, the way the stream reads it in pieces of step bytes. */
static char *read_all(struct multipart_stream *s, size_t step, size_t *len)
{
    size_t cap = (size_t)multipart_stream_len(s);
    char *out = malloc(cap + 1);
    *len = 0;
    long long got;
    while ((got = multipart_stream_read(s, out + *len, step)) > 0)
        *len += (size_t)got;
    assert_int_equal(got, 0);
    return out;
}

static void build(struct multipart *m, size_t file_len)
{
    multipart_init(m);
    json_t *form = json_pack("{s:s, s:i}", "album", "pets", "skipped", 1);
    multipart_fields(m, form);
    json_decref(form);
    multipart_file(m, "photo", "cat \"1\".png", "image/png", (long long)file_len);
    multipart_finish(m);
}

static void test_same_bytes_however_read(void **state)
{
    const size_t n = 100000;
    unsigned char *data = file_bytes(n);
    struct multipart m;
    build(&m, n);
    struct mem_src src = {.data = data, .len = n, .fail_at = -1};
    struct multipart_stream s;
    multipart_stream_init(&s, &m, &(struct multipart_source){mem_read, mem_rewind, &src});
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "--%s\r\nContent-Disposition: form-data; name=\"album\"\r\n\r\npets\r\n"
                      "--%s\r\nContent-Disposition: form-data; name=\"photo\"; "
                      "filename=\"cat %%221%%22.png\"\r\nContent-Type: image/png\r\n\r\n",
                      m.boundary, m.boundary);
    char tail[128];
    int tl = snprintf(tail, sizeof(tail), "\r\n--%s--\r\n", m.boundary);
    assert_int_equal(multipart_stream_len(&s), hl + (long long)n + tl);
    const size_t steps[] = {1, 7, 4096, 65536, 1 << 20};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        multipart_stream_rewind(&s);
        size_t len = 0;
        char *body = read_all(&s, steps[i], &len);
        assert_int_equal(len, (size_t)multipart_stream_len(&s));
        assert_memory_equal(body, head, (size_t)hl);
        assert_memory_equal(body + hl, data, n);
        assert_memory_equal(body + hl + n, tail, (size_t)tl);
        free(body);
    }
    assert_int_equal(src.rewinds, 5);
    multipart_free(&m);
    free(data);
}

static void test_failing_or_short_source_fails(void **state)
{
    const size_t n = 5000;
    unsigned char *data = file_bytes(n);
    struct multipart m;
    build(&m, n);
    char buf[1024];
    struct mem_src failing = {.data = data, .len = n, .fail_at = 3000};
    struct multipart_stream s;
    multipart_stream_init(&s, &m, &(struct multipart_source){mem_read, mem_rewind, &failing});
    long long got;
    while ((got = multipart_stream_read(&s, buf, sizeof(buf))) > 0)
        ;
    assert_int_equal(got, -1);
    struct mem_src shorter = {.data = data, .len = n, .fail_at = -1, .short_by = 1};
    multipart_stream_init(&s, &m, &(struct multipart_source){mem_read, mem_rewind, &shorter});
    while ((got = multipart_stream_read(&s, buf, sizeof(buf))) > 0)
        ;
    assert_int_equal(got, -1); /* never fewer bytes than the Content-Length announced */
    multipart_free(&m);
    free(data);
}

static void test_stream_signature_equals_buffer_signature(void **state)
{
    const size_t n = 300000;
    unsigned char *data = file_bytes(n);
    struct multipart m;
    build(&m, n);
    struct mem_src src = {.data = data, .len = n, .fail_at = -1};
    struct multipart_stream s;
    multipart_stream_init(&s, &m, &(struct multipart_source){mem_read, mem_rewind, &src});
    struct out_stream os = {.len = multipart_stream_len(&s),
                            .read = multipart_stream_read,
                            .rewind = multipart_stream_rewind,
                            .arg = &s};
    const unsigned char key[] = "a signing key";
    char streamed[128], whole[128];
    multipart_stream_read(&s, (char[16]){0}, 16); /* signing starts from the first byte anyway */
    assert_int_equal(outbound_sign_stream(key, sizeof(key) - 1, "op-1", 1700000000, &os, streamed,
                                          sizeof(streamed)),
                     0);
    size_t len = 0;
    multipart_stream_rewind(&s);
    char *body = read_all(&s, 65536, &len);
    outbound_sign(key, sizeof(key) - 1, "op-1", 1700000000, body, len, whole, sizeof(whole));
    assert_string_equal(streamed, whole);
    free(body);
    os.len += 1; /* a stream shorter than its announced length cannot be signed */
    assert_int_equal(outbound_sign_stream(key, sizeof(key) - 1, "op-1", 1700000000, &os, streamed,
                                          sizeof(streamed)),
                     -1);
    multipart_free(&m);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_however_read),
        cmocka_unit_test(test_failing_or_short_source_fails),
        cmocka_unit_test(test_stream_signature_equals_buffer_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
