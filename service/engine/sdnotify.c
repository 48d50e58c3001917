#include "engine/sdnotify.h"

#include <stdint.h>
#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "core/log.h"

/* sd_notify() itself returns 0 without NOTIFY_SOCKET; a failure to send is worth a warning
 * only: the manager then times the start-up out, which says more than we could. */
static void notify(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0)
        log_warn("sd_notify(%s) failed: error %d", state, -rc);
}

void sdnotify_ready(const char *host, int port)
{
    char state[160];
    snprintf(state, sizeof(state), "READY=1\nSTATUS=listening on %s:%d", host, port);
    notify(state);
}

void sdnotify_stopping(void)
{
    notify("STOPPING=1\nSTATUS=shutting down");
}

void sdnotify_reloading(void)
{
    notify("RELOADING=1\nSTATUS=reloading the configuration");
}

void sdnotify_watchdog(void)
{
    notify("WATCHDOG=1");
}

double sdnotify_watchdog_period_ms(void)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    return (double)usec / 2000.0;
}
