"""Pausing and resuming an account's sending: leads are still accepted while paused and wait, visibly.

Only sending new leads stops. Webhooks, reconciliation and the token upkeep go on, so sales keep
being recorded; the push stops at its start when it finds the account paused (leads/push/engine.py).
Resuming sends `sending_resumed`, on which the leads app queues the waiting leads' push at once.
"""

from django.dispatch import Signal
from django.utils import timezone

from .models import Account

# Sent with `account` once sending is resumed: the leads app queues a push for it (after commit).
sending_resumed = Signal()


def account_pause_sending(*, account: Account) -> bool:
    """Pause sending; False when it already was paused."""
    now = timezone.now()
    paused = Account.objects.filter(pk=account.pk, sending_paused_at__isnull=True).update(sending_paused_at=now)
    if paused:
        account.sending_paused_at = now
    return bool(paused)


def account_resume_sending(*, account: Account) -> bool:
    """Resume sending and queue the waiting leads; False when it was not paused."""
    resumed = Account.objects.filter(pk=account.pk, sending_paused_at__isnull=False).update(sending_paused_at=None)
    account.sending_paused_at = None
    if resumed:
        sending_resumed.send(sender=Account, account=account)
    return bool(resumed)
