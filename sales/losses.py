"""Lost deals and their loss reasons: a deal in stage 143, as the API returned it, → its DealLoss row.

amoCRM embeds the reason only when asked (`with=loss_reason`, docs/amocrm.md#entities): the
reconciliation's listing asks for it; a webhook's re-read does not, and then only `loss_reason_id`
is known, so the name is taken from another deal lost for the same reason, or filled in by the
next reconciliation.
"""

from django.db import transaction

from amocrm.models import Account
from amocrm.values import embedded, to_int, to_moment
from leads.selectors import lead_that_created_deal

from .models import DealLoss

LOST_STAGE = 143


def _reason(deal: dict) -> tuple[int | None, str]:
    """(id, name) of the deal's loss reason; the name is empty when the reason was not embedded."""
    reasons = embedded(deal, "loss_reason")
    reason = reasons[0] if reasons else {}
    reason_id = to_int(deal.get("loss_reason_id")) or to_int(reason.get("id"))
    name = str(reason.get("name") or "")[:255] if to_int(reason.get("id")) == reason_id else ""
    return reason_id, name


def deal_loss_apply(*, account: Account, deal: dict) -> DealLoss | None:
    """Record (or update) the loss of a deal in the lost stage; a deal that left it loses its row."""
    deal_id = int(deal["id"])
    if to_int(deal.get("status_id")) != LOST_STAGE or deal.get("is_deleted"):
        DealLoss.objects.filter(account=account, amocrm_deal_id=deal_id).delete()
        return None
    reason_id, name = _reason(deal)
    if not name and reason_id is not None:
        name = (DealLoss.objects.filter(account=account, loss_reason_id=reason_id).exclude(loss_reason="")
                .values_list("loss_reason", flat=True).first() or "")
    with transaction.atomic():
        loss = DealLoss.objects.select_for_update().filter(account=account, amocrm_deal_id=deal_id).first()
        if loss is None:
            loss = DealLoss(account=account, amocrm_deal_id=deal_id)
        elif not name and loss.loss_reason_id == reason_id:
            name = loss.loss_reason  # a re-read without the embedded reason keeps the name we have
        loss.lead = lead_that_created_deal(account=account, deal_id=deal_id)
        loss.pipeline_id = to_int(deal.get("pipeline_id"))
        loss.loss_reason_id, loss.loss_reason = reason_id, name
        loss.lost_at = to_moment(deal.get("closed_at")) or to_moment(deal.get("updated_at"))
        loss.save()
    return loss
