"""Operator actions on leads (the admin's "Retry push" and "Mark as spam")."""

from django.db import transaction

from .models import Lead
from .push.schedule import lead_schedule_push


def lead_retry(*, lead_ids: list) -> int:
    """Failed, spam or backing-off pending leads → pending, due now, attempts reset; then a push is queued.

    A lead whose earlier write may have reached amoCRM keeps that mark, so the retry adopts the deal
    rather than creating a second one.
    """
    retryable = [Lead.Status.FAILED, Lead.Status.SPAM, Lead.Status.PENDING]
    with transaction.atomic():
        leads = Lead.objects.filter(pk__in=lead_ids, status__in=retryable)
        account_ids = set(leads.values_list("account_id", flat=True))
        count = leads.update(status=Lead.Status.PENDING, next_attempt_at=None, attempts=0, claimed_at=None)
        for account_id in account_ids:
            lead_schedule_push(account_id=account_id)
    return count


def lead_mark_spam(*, lead_ids: list) -> int:
    """Pending or failed leads → spam (never pushed). Leads being sent or already in amoCRM are left alone."""
    return (Lead.objects.filter(pk__in=lead_ids, status__in=[Lead.Status.PENDING, Lead.Status.FAILED])
            .update(status=Lead.Status.SPAM, next_attempt_at=None))
