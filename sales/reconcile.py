"""Reconciliation: every hour, apply each account's deals updated since its checkpoint, catching lost webhooks.

amoCRM occasionally loses webhook deliveries. The listing (`GET /api/v4/leads?filter[updated_at]`)
already carries price, stage and closed_at, so each listed deal is applied as it is (`deal_apply`,
under the deal's lock like a webhook's re-read) without being read again. Deleted deals are not
listed: a lost *delete* is caught only by the next event for that deal or a re-read of its sale.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from amocrm.client import AmoCRMClient
from amocrm.models import Account, SyncLog
from amocrm.values import to_int, to_moment
from amocrm.webhooks.health import account_deals_changed_seen

from .services import UNEXPECTED, deal_apply, deals_locked

logger = logging.getLogger(__name__)

# The first reconciliation of an account looks this far back; later ones start at the checkpoint.
RECONCILE_LOOKBACK = timedelta(days=7)
# Re-list a little before the checkpoint: amoCRM's clock and ours differ, and a deal saved while
# the previous run was listing may carry an updated_at just before that run's start.
RECONCILE_OVERLAP = timedelta(minutes=5)


def accounts_to_reconcile() -> list[int]:
    """Ids of the accounts the API can be called for."""
    return list(Account.objects.filter(state=Account.State.CONNECTED).order_by("pk").values_list("pk", flat=True))


def account_reconcile_deals(*, account_id: int) -> int:
    """Apply every deal updated since the account's checkpoint; returns the number of deals seen.

    The checkpoint moves to the moment this run started, and only after every page was applied: a
    failure to list leaves it where it was and the next run (or the task's retry) lists the same
    deals again. A deal that cannot be applied fails alone (`_reconcile_failure`), or one poison
    deal would keep the checkpoint from ever moving.
    """
    account = Account.objects.get(pk=account_id)
    started = timezone.now()
    since = (account.reconciled_until - RECONCILE_OVERLAP) if account.reconciled_until else started - RECONCILE_LOOKBACK
    client = AmoCRMClient(account, log_context={"reconcile": True})
    seen, changed = 0, []
    for deal in client.leads_updated_since(int(since.timestamp())):
        seen += 1
        changed.append(to_moment(deal.get("updated_at")))
        try:
            # Under the deal's lock, like a webhook's re-read, so the two never interleave; in a
            # transaction of its own, so a deal the database refuses leaves the connection usable.
            with deals_locked(account, [int(deal["id"])]), transaction.atomic():
                deal_apply(account=account, deal=deal)
        except Exception as exc:  # noqa: BLE001 — a poison deal fails alone, or the checkpoint never moves
            _reconcile_failure(account=account, deal=deal, exc=exc)
    # Never move the checkpoint backwards (a slow run finishing after a newer one).
    Account.objects.filter(pk=account.pk).filter(
        Q(reconciled_until__isnull=True) | Q(reconciled_until__lt=started)
    ).update(reconciled_until=started)
    account_deals_changed_seen(account_id=account.pk, changed_at=max(filter(None, changed), default=None))
    logger.info("deals reconciled", extra={"account": account.pk, "deals": seen, "since": since.isoformat()})
    return seen


def _reconcile_failure(*, account: Account, deal, exc: Exception) -> None:
    """Log the traceback and leave a sync-log error row an operator can find (by deal id)."""
    deal_id = to_int(deal.get("id")) if isinstance(deal, dict) else None
    logger.error("reconciled deal could not be applied", exc_info=exc, extra={"account": account.pk, "deal": deal_id})
    SyncLog.objects.create(
        account=account, operation="reconcile.deal", direction=SyncLog.Direction.INBOUND,
        status=SyncLog.Status.ERROR, context={"deal": deal_id, "reconcile": True},
        error=_("Deal %(deal)s could not be applied during reconciliation: %(reason)s. The other deals were "
                "applied; this one is applied again with its next change in amoCRM, or by “Re-read from amoCRM” "
                "on its sale.") % {"deal": deal_id, "reason": UNEXPECTED},
    )
