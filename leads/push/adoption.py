"""Adoption: before writing, find the deals of earlier writes whose answers were lost, by the lead's marker tag.

A write whose answer never came (a timeout, a reset, a 502 after amoCRM committed, a killed worker)
may have created its deals. Every deal we create carries the tag `lead-<16 hex digits of the lead
id>` (payloads.marker_of), and a lead is marked `write_attempted_at` before its write leaves. So
the next attempt lists the deals updated since that moment and adopts the one with the lead's tag:
a deal is created at most once per lead.
"""

from datetime import timedelta

from amocrm import errors
from amocrm.values import embedded, main_contact_id

from .. import payloads
from ..models import Lead, LeadSource
from .contacts import keys_of

# Our clock and amoCRM's may differ: look for adopted deals updated a little before the attempt.
ADOPTION_CLOCK_MARGIN = timedelta(minutes=5)


class AdoptionStep:
    """Mixed into AccountPush (engine.py): uses its client, outcome, lease and lead transitions."""

    def adopt(self, leads: list[Lead]) -> list[Lead]:
        """Find the deals of earlier writes whose answers were lost; returns the leads still to create."""
        uncertain = [lead for lead in leads if lead.write_attempted_at is not None]
        if not uncertain:
            return leads
        wanted = {payloads.marker_of(lead): lead for lead in uncertain}
        since = min(lead.write_attempted_at for lead in uncertain) - ADOPTION_CLOCK_MARGIN
        found: dict[str, dict] = {}
        try:
            with self.logs_linked_to(uncertain):
                for deal in self.client.leads_updated_since(int(since.timestamp())):
                    self.renew_lease()
                    for tag in embedded(deal, "tags"):
                        if tag.get("name") in wanted:
                            found.setdefault(tag["name"], deal)
                    if len(found) == len(wanted):
                        break  # stop paging once every marker is found
        except errors.AmoCRMError as exc:
            stop = self.stop_for(exc)
            if stop is not None:
                raise stop from exc
            # Creating again without knowing would risk a duplicate: these wait, the rest go ahead.
            self.release(uncertain, error=f"Looking for an earlier attempt's deal failed: {exc}", backoff=True)
            return [lead for lead in leads if lead.write_attempted_at is None]
        learned = []
        for marker, lead in wanted.items():
            deal = found.get(marker)
            if deal is None:
                continue
            contact_id = main_contact_id(deal)
            self.mark_sent(lead, deal_id=deal["id"], contact_id=contact_id)
            self.outcome.adopted += 1
            if contact_id and lead.source.mode == LeadSource.Mode.DEAL:
                learned += [(key, contact_id) for key in keys_of(lead)]
        self.learn(learned)
        adopted = {wanted[marker].pk for marker in found}
        return [lead for lead in leads if lead.pk not in adopted]
