"""Conversions Celery task: the scheduled Yandex Metrika upload (beat runs it only when it is configured)."""

from celery import shared_task

from . import metrika


@shared_task(name="conversions.tasks.upload_yandex_conversions", ignore_result=True)
def upload_yandex_conversions() -> int:
    """Upload the due won sales to Yandex Metrika; the number uploaded (0 when not configured)."""
    outcome = metrika.upload_due()
    return outcome.uploaded if outcome else 0
