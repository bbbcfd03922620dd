"""Read queries over leads that the push, the sweeper, the admin and the sales attribution share."""

from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from amocrm.models import Account

from .models import Lead


def due() -> Q:
    """Leads whose backoff, if any, is over."""
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())


def outstanding(account_id: int) -> QuerySet[Lead]:
    """Leads of the account that still need a push: pending ones, and sent ones whose note or task is missing."""
    return Lead.objects.filter(Q(status=Lead.Status.PENDING) | Q(status=Lead.Status.SENT, note_pending=True)
                               | Q(status=Lead.Status.SENT, task_pending=True), account_id=account_id)


def accounts_to_sweep(*, pending_for: timedelta) -> QuerySet:
    """Ids of connected accounts (sending not paused) with work the queue may have lost: due leads pending for
    longer than `pending_for`, leads `sending` whose lease ran out (their push died), due notes and tasks still
    missing."""
    now = timezone.now()
    work = (
        (Q(status=Lead.Status.PENDING, created_at__lte=now - pending_for) & due())
        | (Q(status=Lead.Status.SENDING) & ~Q(lease_expires_at__gt=now))  # no lease (an old row) counts as run out
        | (Q(status=Lead.Status.SENT, note_pending=True) & due())
        | (Q(status=Lead.Status.SENT, task_pending=True) & due())
    )
    return (Lead.objects.filter(work, account__state=Account.State.CONNECTED, account__sending_paused_at__isnull=True)
            .order_by().values_list("account_id", flat=True).distinct())


def lead_that_created_deal(*, account: Account, deal_id: int) -> Lead | None:
    """The (first) lead whose push created this amoCRM deal."""
    return Lead.objects.filter(account=account, amocrm_deal_id=deal_id).order_by("created_at").first()


def lead_of_contact(*, account: Account, contact_id: int, before: datetime) -> Lead | None:
    """The contact's last lead created before `before` (last touch), else its first lead at all."""
    of_contact = Lead.objects.filter(account=account, amocrm_contact_id=contact_id)
    return (of_contact.filter(created_at__lte=before).order_by("-created_at").first()
            or of_contact.order_by("created_at").first())
