"""What /metrics reports: the event counters of every process, and state read from the database and Redis.

Counters and histograms come from the sample files of every process group under METRICS_DIR
(monitoring/multiprocess.py), merged into one family each. State is read at scrape time, cheaply:
leads by status (selectors.lead_counts_by_status: the outstanding ones from the partial index, the
rest cached), token expiry, account state and webhook subscription state (a few rows), the webhook
backlog (the state index),
open incidents, and the Celery queue's length in Redis (skipped in embedded mode, which has no Redis).
"""

import logging

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from amocrm.models import Account, Token, WebhookState

from . import multiprocess
from .models import AlertChannel, AlertRule, Incident
from .rules import pending_by_account
from .selectors import lead_counts_by_status, webhook_backlog

logger = logging.getLogger(__name__)


class AllProcessesCollector:
    """The counters and histograms of every process of every group, one family per metric."""

    def collect(self):
        return MultiProcessCollector.merge(multiprocess.all_files(settings.METRICS_DIR), accumulate=True)


def _queue_lengths() -> dict[str, int]:
    import redis

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        # kombu keeps a queue's messages in a list named after it, and priority levels in "<queue>\x06\x16<n>".
        names = [queue, *[f"{queue}\x06\x16{level}" for level in range(1, 10)]]
        pipe = client.pipeline()
        for name in names:
            pipe.llen(name)
        return {queue: sum(pipe.execute())}
    finally:
        client.close()


class StateCollector:
    """Gauges read from the database and Redis when Prometheus scrapes."""

    def collect(self):
        now = timezone.now()
        accounts = {account.pk: account for account in Account.objects.all()}

        def label(account_id) -> list[str]:
            account = accounts.get(account_id)
            return [str(account_id), account.name if account else ""]

        leads = GaugeMetricFamily("amocrm_leads", "Leads by account and status (sent, failed and spam counted at "
                                  "most once a minute).", labels=["account", "account_name", "status"])
        for account_id, by_status in lead_counts_by_status().items():
            for status, count in by_status.items():
                leads.add_metric([*label(account_id), status], count)
        yield leads

        oldest = GaugeMetricFamily("amocrm_leads_oldest_pending_seconds",
                                   "Age of the oldest lead waiting to be sent to amoCRM (0: none waiting).",
                                   labels=["account", "account_name"])
        pending = pending_by_account()
        for account_id in accounts:
            row = pending.get(account_id)
            oldest.add_metric(label(account_id), (now - row["oldest"]).total_seconds() if row else 0.0)
        yield oldest

        expiry = GaugeMetricFamily("amocrm_token_expiry_seconds",
                                   "Seconds until the account's access token expires (negative: expired).",
                                   labels=["account", "account_name", "long_lived"])
        for token in Token.objects.filter(account__in=list(accounts)):
            expiry.add_metric([*label(token.account_id), str(token.long_lived).lower()],
                              (token.expires_at - now).total_seconds())
        yield expiry

        state = GaugeMetricFamily("amocrm_account_state", "1 for the account's current connection state.",
                                  labels=["account", "account_name", "state"])
        for account_id, account in accounts.items():
            for choice in Account.State.values:
                state.add_metric([*label(account_id), choice], 1.0 if account.state == choice else 0.0)
        yield state

        webhook = GaugeMetricFamily("amocrm_webhook_subscription_state",
                                    "1 for the state the webhook health check last found the subscription in.",
                                    labels=["account", "account_name", "state"])
        for account_id, account in accounts.items():
            for choice in WebhookState.values:
                webhook.add_metric([*label(account_id), choice], 1.0 if account.webhook_state == choice else 0.0)
        yield webhook

        count, lag = webhook_backlog(now=now)
        yield GaugeMetricFamily("amocrm_webhook_events_unprocessed", "Webhook deliveries stored, not processed yet.",
                                value=count)
        yield GaugeMetricFamily("amocrm_webhook_processing_lag_seconds",
                                "Age of the oldest webhook delivery not processed yet (0: none).", value=lag)

        incidents = GaugeMetricFamily("amocrm_alert_incidents_open", "Open alert incidents by rule.", labels=["rule"])
        for rule, n in _open_incidents().items():
            incidents.add_metric([rule], n)
        yield incidents

        failing = GaugeMetricFamily("amocrm_alert_channel_failing",
                                    "1 when the alert channel's last attempt failed.", labels=["channel", "kind"])
        for channel in AlertChannel.objects.filter(enabled=True):
            failing.add_metric([channel.name, channel.kind], 1.0 if channel.failing else 0.0)
        yield failing

        if settings.REDIS_URL:
            queue = GaugeMetricFamily("amocrm_celery_queue_length", "Tasks waiting in the Celery queue.",
                                      labels=["queue"])
            try:
                for name, length in _queue_lengths().items():
                    queue.add_metric([name], length)
            except Exception:  # noqa: BLE001 (Redis down: the gauge is left out, the rest is still reported)
                logger.warning("queue length not read: Redis did not answer")
            yield queue

        yield _build_info()


def _build_info() -> GaugeMetricFamily:
    info = GaugeMetricFamily("amocrm_build_info", "The running version.", labels=["version"])
    info.add_metric([settings.VERSION], 1.0)
    return info


def _open_incidents() -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(AlertRule.Kind.values, 0)
    for kind in Incident.objects.filter(resolved_at__isnull=True).values_list("rule__kind", flat=True):
        counts[kind] = counts.get(kind, 0) + 1
    return counts
