"""The mirrored amoCRM stage of our own leads: where the deal a lead created is now (from webhooks and re-reads)."""

from datetime import datetime

from django.db.models import Q

from amocrm.models import Account

from .models import Lead


def lead_mirror_deal(*, account: Account, deal_id: int, pipeline_id: int | None = None,
                     stage_id: int | None = None, responsible_user_id: int | None = None,
                     modified_at: datetime | None = None, expected_stage_id: int | None = None) -> int:
    """Copy where the deal is now onto the leads that created it; returns the number of leads updated.

    `Lead.stage_changed_at` holds the amoCRM modification time of the newest deal state mirrored,
    and an older one changes nothing. Reduced webhook bodies carry no time at all: they apply as a
    compare-and-set on the stage they say the deal left (`expected_stage_id`), or, lacking that,
    only while nothing timestamped has been mirrored yet.
    """
    values = {name: value for name, value in (("pipeline_id", pipeline_id), ("stage_id", stage_id),
                                               ("responsible_user_id", responsible_user_id)) if value is not None}
    if not values:
        return 0
    if modified_at is not None:
        guard = Q(stage_changed_at__isnull=True) | Q(stage_changed_at__lte=modified_at)
        values["stage_changed_at"] = modified_at
    elif expected_stage_id is not None:
        guard = Q(stage_id__isnull=True) | Q(stage_id=expected_stage_id)
    else:
        guard = Q(stage_changed_at__isnull=True)
    return Lead.objects.filter(guard, account=account, amocrm_deal_id=deal_id).update(**values)
