/* deploy/grafana/offlineq.json parses and every metric it (and deploy/prometheus/alerts.yml)
 * names is one the service's GET /metrics writes: a renamed or dropped series fails here, not
 * on an operator's empty panel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define DB "e2e_deploy_metrics"

/* Whether the exposition text has a sample line of exactly name. */
static bool has_series(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p != NULL; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && (p[n] == '{' || p[n] == ' '))
            return true;
    }
    return false;
}

/* Checks every offlineq_* word of the file against the scrape; returns how many it found. */
static int check_names(const char *file, const char *scrape)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", getenv("OFFLINEQ_SOURCE_DIR"), file);
    char *text = th_slurp(path);
    assert_true(strlen(text) > 0);
    int found = 0;
    for (const char *p = strstr(text, "offlineq_"); p != NULL; p = strstr(p + 1, "offlineq_")) {
        char name[128];
        if (p > text && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z')))
            continue; /* inside another word */
        if (sscanf(p, "%127[a-z0-9_]", name) != 1)
            continue;
        if (!has_series(scrape, name))
            fail_msg("%s names %s, which GET /metrics does not write", file, name);
        found++;
    }
    free(text);
    return found;
}

/* The service is stopped and the database dropped also when an assertion ends a test early. */
static int setup(void **state)
{
    *state = calloc(1, sizeof(struct svc));
    return 0;
}

static int teardown(void **state)
{
    struct svc *s = *state;
    if (s->pid > 0)
        th_svc_stop(s, SIGKILL);
    th_db_drop(DB);
    free(s);
    return 0;
}

static void test_dashboard_and_alerts_name_real_series(void **state)
{
    char url[512];
    th_db_create(DB, url, sizeof(url));
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    struct svc *s = *state;
    assert_int_equal(th_svc_start(s, url, env, NULL), 0);
    /* offlineq_http_requests_total has a series once a request has been answered: counted when
     * libmicrohttpd reports it completed, just after the answer went out, so the first scrape
     * may come before it (a fresh-clone CI run saw that) */
    th_resp_free(th_http(s, "GET", "/healthz", NULL, 0, NULL));
    struct resp *r = NULL;
    for (int i = 0; i < 50; i++) {
        th_resp_free(r);
        r = th_http(s, "GET", "/metrics", NULL, 0, NULL);
        if (has_series(r->body, "offlineq_http_requests_total"))
            break;
        usleep(100 * 1000);
    }
    assert_int_equal(r->status, 200);

    char path[600];
    snprintf(path, sizeof(path), "%s/deploy/grafana/offlineq.json", getenv("OFFLINEQ_SOURCE_DIR"));
    json_error_t err;
    json_t *dash = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (dash == NULL)
        fail_msg("%s:%d: %s", path, err.line, err.text);
    assert_string_equal(th_str(dash, "uid"), "offlineq");
    json_t *panels = json_object_get(dash, "panels");
    assert_true(json_array_size(panels) >= 10);
    size_t i;
    json_t *p;
    json_array_foreach(panels, i, p)
    {
        json_t *targets = json_object_get(p, "targets");
        assert_true(json_array_size(targets) >= 1);
        size_t k;
        json_t *t;
        json_array_foreach(targets, k, t) assert_non_null(strstr(th_str(t, "expr"), "offlineq_"));
    }
    json_decref(dash);

    assert_true(check_names("deploy/grafana/offlineq.json", r->body) >= 16);
    assert_true(check_names("deploy/prometheus/alerts.yml", r->body) >= 5);
    th_resp_free(r);
    assert_int_equal(th_svc_stop(s, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dashboard_and_alerts_name_real_series, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
