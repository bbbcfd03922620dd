"""Celery app: broker from REDIS_URL (or an embedded filesystem broker), JSON only, beat schedule in code."""

import logging
import os
from datetime import timedelta

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work. Every task here is idempotent, so a beat restart that fires one twice is harmless.
app.conf.beat_schedule = {
    "worker-heartbeat": {"task": "config.tasks.heartbeat", "schedule": timedelta(seconds=30)},
    "amocrm-refresh-expiring-tokens": {
        "task": "amocrm.tasks.refresh_expiring_tokens",
        "schedule": timedelta(minutes=10),
    },
    "amocrm-prune-sync-log": {"task": "amocrm.tasks.prune_sync_log", "schedule": timedelta(hours=6)},
    "amocrm-prune-webhook-events": {"task": "amocrm.tasks.prune_webhook_events", "schedule": timedelta(hours=6)},
    "leads-sweep-pending": {"task": "leads.tasks.sweep_pending_leads", "schedule": timedelta(seconds=30)},
    "amocrm-sweep-webhook-events": {
        "task": "amocrm.tasks.sweep_webhook_events",
        "schedule": timedelta(seconds=60),
    },
    "sales-reconcile": {"task": "sales.tasks.reconcile_all_accounts", "schedule": timedelta(hours=1)},
    "amocrm-check-webhooks": {"task": "amocrm.tasks.check_webhooks", "schedule": timedelta(minutes=15)},
}


@app.on_after_configure.connect
def _schedule_alert_evaluation(sender, **kwargs):
    """Alert rules every ALERTS_EVALUATE_SECONDS (a setting, so read once the settings are loaded)."""
    from django.conf import settings

    sender.conf.beat_schedule["monitoring-evaluate-alerts"] = {
        "task": "monitoring.tasks.evaluate_alerts",
        "schedule": timedelta(seconds=settings.ALERTS_EVALUATE_SECONDS),
    }


@app.on_after_configure.connect
def _schedule_metrika_upload(sender, **kwargs):
    """Won sales to Yandex Metrika every YANDEX_METRIKA_UPLOAD_MINUTES, only when a counter and token are set."""
    from django.conf import settings

    if settings.YANDEX_METRIKA_COUNTER and settings.YANDEX_METRIKA_TOKEN:
        sender.conf.beat_schedule["conversions-upload-yandex"] = {
            "task": "conversions.tasks.upload_yandex_conversions",
            "schedule": timedelta(minutes=settings.YANDEX_METRIKA_UPLOAD_MINUTES),
        }


@app.on_after_configure.connect
def _prepare_embedded_broker(sender, **kwargs):
    """The filesystem transport needs its folders to exist before anyone publishes."""
    opts = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if opts.get(key):
            os.makedirs(opts[key], exist_ok=True)


@signals.before_task_publish.connect
def _propagate_request_id(headers=None, **kwargs):
    """Carry the web request's id into the task message so task logs can be joined to it."""
    from .requestid import request_id_var

    request_id = request_id_var.get()
    if headers is not None and "request_id" not in headers and request_id != "-":
        headers["request_id"] = request_id


@signals.task_prerun.connect
def _adopt_request_id(task=None, **kwargs):
    """Log under the publishing request's id, or under the task id for work nobody requested (beat)."""
    from .requestid import request_id_var

    request_id = getattr(task.request, "request_id", None) or task.request.id or "-"
    task.request._request_id_token = request_id_var.set(request_id)


@signals.task_postrun.connect
def _drop_request_id(task=None, **kwargs):
    from .requestid import request_id_var

    token = getattr(task.request, "_request_id_token", None)
    if token is not None:
        try:
            request_id_var.reset(token)
        except ValueError:  # set in another context (thread pool); nothing to undo
            logging.getLogger(__name__).debug("request id context already reset")


@signals.setup_logging.connect
def _use_django_logging(**kwargs):
    """Keep Django's LOGGING (JSON on stdout) in worker and beat instead of Celery's own format."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@signals.worker_init.connect
def _metrics_for_worker(**kwargs):
    """Before the pool forks: the worker's metric samples go to a fresh directory (monitoring.multiprocess)."""
    from django.conf import settings

    from monitoring.multiprocess import use_group

    use_group(settings.METRICS_DIR, "worker", wipe=True)


@signals.worker_process_shutdown.connect
def _metrics_process_dead(pid=None, **kwargs):
    """A pool process ended: drop its live gauges (prometheus-client's bookkeeping for dead processes)."""
    from monitoring.multiprocess import mark_process_dead

    mark_process_dead(pid or os.getpid())
