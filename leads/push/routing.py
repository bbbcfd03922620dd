"""The responsible manager of each new deal: the source's fixed user, or the next one of its round-robin.

The round-robin's turn lives in the source's row (`responsible_turn`) and is taken under that row's
lock (`select_for_update`), so web processes, workers and hosts share one turn and the counts of the
chosen users never differ by more than one. Users inactive in amoCRM (the cached users list,
`AmoUser.is_active`) are skipped. The choice is written on the lead before its deal is sent, so a
retry keeps the same manager and the operator sees it on the lead.
"""

from django.db import transaction

from amocrm.models import AmoUser
from amocrm.values import to_int

from ..models import Lead, LeadSource


def round_robin_users(source: LeadSource) -> list[int]:
    """The source's chosen users that are active in amoCRM, in the order the operator chose them."""
    chosen = [user_id for user_id in (to_int(item) for item in source.responsible_user_ids or []) if user_id]
    active = set(AmoUser.objects.filter(account_id=source.account_id, amocrm_id__in=chosen, is_active=True)
                 .values_list("amocrm_id", flat=True))
    return list(dict.fromkeys(user_id for user_id in chosen if user_id in active))


def round_robin_take(source_id: int, count: int) -> list[int]:
    """The next `count` users of the source's round-robin (empty when none is active); advances its turn."""
    with transaction.atomic():
        source = LeadSource.objects.select_for_update().get(pk=source_id)
        users = round_robin_users(source)
        if not users or count <= 0:
            return []
        start = source.responsible_turn
        LeadSource.objects.filter(pk=source_id).update(responsible_turn=start + count)
    return [users[(start + offset) % len(users)] for offset in range(count)]


def fixed_responsible(source: LeadSource, account) -> int | None:
    return source.responsible_user_id or account.default_responsible_user_id or None


class RoutingStep:
    """Mixed into AccountPush (engine.py): picks the responsible user of the leads about to become new deals."""

    def assign_responsible(self, leads: list[Lead]) -> None:
        """Set `responsible_user_id` on each lead that has none yet (a retry keeps its manager)."""
        unassigned: dict[int, list[Lead]] = {}
        for lead in leads:
            if not lead.responsible_user_id:
                unassigned.setdefault(lead.source_id, []).append(lead)
        chosen = []
        for source_id, of_source in unassigned.items():
            source = of_source[0].source
            if source.responsible_mode == LeadSource.ResponsibleMode.ROUND_ROBIN:
                users = round_robin_take(source_id, len(of_source))
            else:
                users = []
            fallback = fixed_responsible(source, self.account)
            for index, lead in enumerate(of_source):
                user_id = users[index] if users else fallback
                if user_id:
                    lead.responsible_user_id = user_id
                    chosen.append(lead)
        if chosen:  # one UPDATE for the batch, committed before the deals are written
            Lead.objects.bulk_update(chosen, ["responsible_user_id"])
