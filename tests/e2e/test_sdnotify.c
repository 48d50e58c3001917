/* systemd's notification protocol against a real unix datagram socket, as the manager listens
 * on one (NOTIFY_SOCKET): READY=1 once the service listens on a migrated database (/readyz is
 * 200 when it arrives), WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

#define DB "e2e_sdnotify"

struct listener {
    char dir[64];
    char path[128];
    int fd;
};

static void listener_open(struct listener *l)
{
    snprintf(l->dir, sizeof(l->dir), "/tmp/oq-sdnotify-XXXXXX");
    assert_non_null(mkdtemp(l->dir));
    snprintf(l->path, sizeof(l->path), "%s/notify.sock", l->dir);
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(l->fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", l->path);
    assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

static void listener_close(struct listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    unlink(l->path);
    rmdir(l->dir);
}

/* What a test leaves to clean up, also when an assertion ends it early. */
struct fixture {
    struct listener l;
    struct svc s;
};

static int fixture_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->l.fd = -1;
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    struct fixture *f = *state;
    if (f->s.pid > 0)
        th_svc_stop(&f->s, SIGKILL);
    if (f->l.dir[0] != '\0')
        listener_close(&f->l);
    th_db_drop(DB);
    th_db_drop(DB "_plain");
    free(f);
    return 0;
}

/* The next datagram within timeout_ms into buf (NUL-terminated); 0 when none came. */
static size_t next_datagram(struct listener *l, char *buf, size_t len, int timeout_ms)
{
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return 0;
    ssize_t n = recv(l->fd, buf, len - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    return (size_t)n;
}

/* Whether the message has the line want ("READY=1"). */
static bool has_line(const char *msg, const char *want)
{
    size_t n = strlen(want);
    for (const char *p = msg; p != NULL; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, want, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    }
    return false;
}

static long readyz(const struct svc *s)
{
    struct resp *r = th_http(s, "GET", "/readyz", NULL, 0, NULL);
    long status = r->status;
    th_resp_free(r);
    return status;
}

static void test_ready_watchdog_stopping(void **state)
{
    struct fixture *f = *state;
    struct listener *l = &f->l;
    listener_open(l);
    char url[512], notify[160];
    th_db_create(DB, url, sizeof(url));
    snprintf(notify, sizeof(notify), "NOTIFY_SOCKET=%s", l->path);
    const char *const env[] = {notify, "WATCHDOG_USEC=400000", NULL}; /* a ping every 200 ms */
    struct svc *s = &f->s;
    assert_int_equal(th_svc_start(s, url, env, NULL), 0);
    char msg[512];
    bool ready = false;
    double t0 = th_now_ms();
    while (!ready && th_now_ms() - t0 < 10000) {
        if (next_datagram(l, msg, sizeof(msg), 1000) == 0)
            continue;
        assert_false(has_line(msg, "STOPPING=1"));
        ready = has_line(msg, "READY=1");
    }
    assert_true(ready);
    assert_non_null(strstr(msg, "STATUS=listening on 127.0.0.1:"));
    assert_int_equal(readyz(s), 200); /* READY=1 came once /readyz says ready */
    /* WATCHDOG=1 every 200 ms: in 1.5 s at least 4, at most 9 */
    int pings = 0;
    t0 = th_now_ms();
    while (th_now_ms() - t0 < 1500) {
        if (next_datagram(l, msg, sizeof(msg), 100) > 0) {
            assert_true(has_line(msg, "WATCHDOG=1"));
            pings++;
        }
    }
    assert_in_range(pings, 4, 9);
    assert_int_equal(th_svc_stop(s, SIGTERM), 0);
    bool stopping = false;
    while (!stopping && next_datagram(l, msg, sizeof(msg), 0) > 0) /* queued before the exit */
        stopping = has_line(msg, "STOPPING=1");
    assert_true(stopping);
}

/* Without NOTIFY_SOCKET nothing is sent and nothing fails: the service starts, serves, stops. */
static void test_no_socket_no_op(void **state)
{
    char url[512];
    struct fixture *f = *state;
    th_db_create(DB "_plain", url, sizeof(url));
    const char *const env[] = {"WATCHDOG_USEC=400000", NULL};
    assert_int_equal(th_svc_start(&f->s, url, env, NULL), 0);
    assert_int_equal(readyz(&f->s), 200);
    char *log = th_svc_log(&f->s);
    bool said = strstr(log, "sd_notify") != NULL;
    free(log);
    assert_false(said);
    assert_int_equal(th_svc_stop(&f->s, SIGTERM), 0);
}

int main(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready_watchdog_stopping, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_no_socket_no_op, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
