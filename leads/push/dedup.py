"""Open-deal deduplication: a source with the "attach" policy turns a repeat enquiry into a note on the open deal.

When the lead's contact is a known person with an open deal (not won 142, not lost 143, in any
pipeline) created within the source's `dedup_days`, no second deal is created: the lead is marked
sent on that deal (`attached_to_deal`) and its note (message, UTMs, form fields) goes onto it.

Cost, per batch and never per lead (docs/amocrm.md#entities): the ids of a person's deals come
with the contact search (`with=leads`, no extra request); persons known from earlier pushes are
read in one `GET /contacts?filter[id][]=…&with=leads`, and the candidate deals in one
`GET /leads?filter[id][]=…`. Two submissions of one person in one batch make one deal: the later
ones follow the first and are attached to the deal its write created.
"""

import logging
from datetime import timedelta

from django.utils import timezone

from amocrm import errors
from amocrm.values import embedded, to_int

from ..models import Lead, LeadSource

logger = logging.getLogger(__name__)

WON_OR_LOST = {142, 143}  # docs/amocrm.md#entities: in every pipeline
# Newest deals of a person looked at (higher id = newer): keeps the deals' read to one request per batch.
DEALS_PER_PERSON = 5


def attaches(lead: Lead) -> bool:
    return lead.source.dedup_policy == LeadSource.DedupPolicy.ATTACH


class DedupStep:
    """Mixed into AccountPush (engine.py): uses its client, account, outcome and lead transitions."""

    def dedup_reset(self) -> None:
        """Forget the batch's contacts' deal ids (from with=leads) and its followers (leads joining an earlier one)."""
        self.contact_deals: dict[int, list[int]] = {}
        self.followers: dict[object, list[Lead]] = {}

    def remember_contact_deals(self, hit: dict) -> None:
        contact_id = to_int(hit.get("id"))
        if contact_id:
            self.contact_deals[contact_id] = [deal_id for deal_id in
                                              (to_int(deal.get("id")) for deal in embedded(hit, "leads")) if deal_id]

    def follow(self, first_pk, lead: Lead) -> None:
        """`lead` is of the same person as `first_pk`, whose deal this batch creates: attach it to that deal."""
        self.followers.setdefault(first_pk, []).append(lead)

    def attach_to_open_deals(self, ready: list[tuple[Lead, dict]]) -> list[tuple[Lead, dict]]:
        """Attach the leads of "attach" sources whose person has an open recent deal; returns the rest."""
        candidates = [(lead, contact["id"]) for lead, contact in ready if attaches(lead) and contact.get("id")]
        if not candidates:
            return ready
        try:
            open_deal = self._open_deals(candidates)
        except errors.AmoCRMError as exc:
            stop = self.stop_for(exc)
            if stop is not None:
                raise stop from exc
            # Without knowing the open deals a new deal would risk the duplicate the operator asked to avoid.
            waiting = [lead for lead, _ in candidates]
            self.release(waiting, error=f"Looking for the person's open deal failed: {exc}", backoff=True)
            return [(lead, contact) for lead, contact in ready if lead not in waiting]
        rest, first_of = [], {}
        for lead, contact in ready:
            deal_id = open_deal.get(lead.pk)
            if deal_id:
                self.mark_sent(lead, deal_id=deal_id, contact_id=contact["id"], attached=True)
                self.outcome.sent += 1
            elif attaches(lead) and contact.get("id") in first_of:
                self.follow(first_of[contact["id"]], lead)  # one new deal for the person, this one joins it
            else:
                if contact.get("id"):
                    first_of.setdefault(contact["id"], lead.pk)
                rest.append((lead, contact))
        return rest

    def _open_deals(self, candidates: list[tuple[Lead, int]]) -> dict:
        """lead pk → the newest open deal of its person created within its source's window (one read per batch)."""
        leads = [lead for lead, _ in candidates]
        unknown = sorted({contact_id for _, contact_id in candidates if contact_id not in self.contact_deals})
        if unknown:
            with self.logs_linked_to(leads):
                for hit in self.client.contacts_with_leads(unknown, context=self.context(leads)):
                    self.remember_contact_deals(hit)
        newest = {contact_id: sorted(self.contact_deals.get(contact_id) or [], reverse=True)[:DEALS_PER_PERSON]
                  for _, contact_id in candidates}
        deal_ids = sorted({deal_id for ids in newest.values() for deal_id in ids})
        if not deal_ids:
            return {}
        self.renew_lease()
        with self.logs_linked_to(leads):
            deals = {to_int(deal.get("id")): deal for deal in self.client.leads_list_by_ids(deal_ids)}
        result = {}
        for lead, contact_id in candidates:
            oldest = timezone.now() - timedelta(days=lead.source.dedup_days)
            open_ids = [deal_id for deal_id in newest[contact_id]
                        if deal_id in deals and _is_open(deals[deal_id], oldest)]
            if open_ids:
                result[lead.pk] = max(open_ids)
        return result

    def attach_followers(self) -> None:
        """After the write: each follower joins the deal its first lead got; without one it goes again later."""
        if not self.followers:
            return
        firsts = dict(Lead.objects.filter(pk__in=list(self.followers), status=Lead.Status.SENT)
                      .values_list("pk", "amocrm_deal_id"))
        contacts = dict(Lead.objects.filter(pk__in=list(self.followers)).values_list("pk", "amocrm_contact_id"))
        for first_pk, leads in self.followers.items():
            if firsts.get(first_pk):
                for lead in leads:
                    self.mark_sent(lead, deal_id=firsts[first_pk], contact_id=contacts.get(first_pk), attached=True)
                    self.outcome.sent += 1
            else:
                self.release(leads, uncount=True)
                self.outcome.deferred += len(leads)
        self.followers = {}


def _is_open(deal: dict, oldest) -> bool:
    created = to_int(deal.get("created_at"))
    return (to_int(deal.get("status_id")) not in WON_OR_LOST and created is not None
            and created >= int(oldest.timestamp()))
