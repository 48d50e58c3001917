/* systemd's readiness and watchdog protocol (sd_notify(3), libsystemd): the service tells the
 * manager READY=1 once it listens on a migrated database, WATCHDOG=1 at half of WATCHDOG_USEC
 * (from the janitor's round), STOPPING=1 when a signal starts the shutdown. Every call is a
 * no-op when NOTIFY_SOCKET is unset (not started by systemd). Thread-safe: each message is
 * one datagram on a socket of its own. */
#ifndef OQ_SDNOTIFY_H
#define OQ_SDNOTIFY_H

/* READY=1 and a STATUS= line naming where the service listens. */
void sdnotify_ready(const char *host, int port);
void sdnotify_stopping(void);
/* RELOADING=1: a SIGHUP reload runs; sdnotify_ready follows it. */
void sdnotify_reloading(void);
void sdnotify_watchdog(void);

/* Half of WATCHDOG_USEC, in milliseconds, when the manager's watchdog is on for this process
 * (WATCHDOG_PID unset or ours); 0 when it is off. */
double sdnotify_watchdog_period_ms(void);

#endif
