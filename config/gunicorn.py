"""Gunicorn settings for the web container (`gunicorn -c python:config.gunicorn config.wsgi`), JSON logs."""

import os

from gunicorn import glogging

from config.logging import JsonFormatter, mask_url_secrets


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours the CPUs a container is pinned to
    except AttributeError:
        return os.cpu_count() or 1


bind = "0.0.0.0:8000"
# Requests are short (validate, one INSERT, answer) and mostly wait on PostgreSQL, so threads
# add concurrency cheaply; one process per CPU plus one keeps both cores of a small host busy.
# Capped so a big host does not open hundreds of database connections (CONN_MAX_AGE keeps one
# per thread). WEB_CONCURRENCY (gunicorn's own variable) overrides; GUNICORN_CMD_ARGS too.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", min(_cpus() + 1, 8)))
threads = 4
# Nothing in a request calls amoCRM, so a request that takes 30 s is stuck: kill and replace it.
timeout = 30
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow forever; jitter avoids all at once.
max_requests = 5000
max_requests_jitter = 500
# The worker heartbeat file on tmpfs: a container's overlay disk can stall it into a timeout.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 (gunicorn's advice for Docker)
# TLS ends at the reverse proxy in front of us (the port is published on 127.0.0.1 only);
# trust its X-Forwarded-* headers. FORWARDED_ALLOW_IPS is gunicorn's own variable.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
# The runtime control socket (gunicornc) is not used in containers, and two instances under one
# $HOME would fight over its path.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


class JsonLogger(glogging.Logger):
    """Gunicorn's error and access logs as JSON lines, like the application's own logs.

    The access line has the request id (the X-Request-ID the app answered with) and the path
    without its query string, which may carry an OAuth code, and with its URL secret (the webhook
    key, a lead hook secret) masked.
    """

    def setup(self, cfg):
        super().setup(cfg)
        formatter = JsonFormatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        request_id = next((value for name, value in resp.headers if name.lower() == "x-request-id"), "-")
        method, path = environ.get("REQUEST_METHOD"), mask_url_secrets(environ.get("PATH_INFO") or "")
        self.access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": int(status),
                "duration_ms": round(request_time.total_seconds() * 1000, 1),
                "bytes": getattr(resp, "sent", None),
                "remote_addr": environ.get("REMOTE_ADDR"),
                "user_agent": environ.get("HTTP_USER_AGENT"),
            },
        )


logger_class = JsonLogger


def on_starting(server):
    """In the master, before workers fork: web metric samples go to a fresh directory (monitoring.multiprocess)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    from monitoring.multiprocess import use_group

    use_group(settings.METRICS_DIR, "web", wipe=True)


def child_exit(server, worker):
    """A worker ended: drop its live gauges from the shared directory (prometheus-client's multiprocess bookkeeping)."""
    from monitoring.multiprocess import mark_process_dead

    mark_process_dead(worker.pid)
