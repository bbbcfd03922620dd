"""Monitoring tasks: the periodic rule evaluation and the sending of each alert message."""

from celery import shared_task

from . import services


@shared_task(name="monitoring.tasks.evaluate_alerts", ignore_result=True)
def evaluate_alerts() -> dict:
    """Open, remind and resolve incidents from what the models record now (beat, every minute)."""
    return services.alerts_evaluate()


@shared_task(name="monitoring.tasks.send_notification", bind=True, ignore_result=True, acks_late=True,
             max_retries=None)
def send_notification(self, notification_id: int) -> None:
    """Send one alert message through one channel; a failure is retried with backoff by Celery."""
    delay = services.notification_send(notification_id=notification_id)
    if delay is not None:
        raise self.retry(countdown=delay)


@shared_task(name="monitoring.tasks.send_test_message", ignore_result=True)
def send_test_message(channel_id: int) -> str:
    """The admin's "send test message": the result shows as the channel's last success or last error."""
    return services.channel_send_test(channel_id=channel_id)
