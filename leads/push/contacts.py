"""The contact of each deal: known from an earlier push, found by one verified search, or created with the deal.

amoCRM's contact search is fuzzy (docs/amocrm.md#entities), so a hit is the same person only when
one of its phones or emails normalizes to exactly the lead's (payloads.contact_matches). What was
verified is remembered in ContactMatch (normalized phone/email → contact id), so a returning person
costs no search. amoCRM never compares the deals of one request, so a second lead of a person the
batch is creating waits for the next batch, where the person is known: no duplicate contacts.
"""

import logging
import uuid

from amocrm import errors

from .. import payloads
from ..models import ContactMatch, Lead

logger = logging.getLogger(__name__)


def keys_of(lead: Lead) -> list[tuple[str, str]]:
    """The lead's (kind, normalized value) pairs a contact is known by: its phone and its email."""
    keys = []
    if lead.phone:
        keys.append((ContactMatch.Kind.PHONE, lead.phone))
    if lead.email:
        keys.append((ContactMatch.Kind.EMAIL, lead.email))
    return keys


class ContactStep:
    """Mixed into AccountPush (engine.py): uses its account, client, outcome, lease and lead transitions."""

    def resolve_contacts(self, leads: list[Lead]) -> list[tuple[Lead, dict]]:
        """Each lead with the contact for its deal: {"id": N} for a known person, the full contact for a new one.

        A second lead of a person this batch creates is deferred to the next batch (amoCRM never compares
        the deals of one request), where the person is known. Lookup order: leads earlier in the batch,
        the local map, then one verified search.
        """
        if not leads:
            return []
        keys = {key for lead in leads for key in keys_of(lead)}
        known: dict[tuple[str, str], int] = {}
        if keys:
            rows = ContactMatch.objects.filter(account=self.account, value__in={value for _, value in keys})
            known = {(row.kind, row.value): row.contact_id for row in rows if (row.kind, row.value) in keys}
        in_batch: dict[tuple[str, str], tuple[str, int | uuid.UUID]] = {}
        ready, deferred = [], []
        for lead in leads:
            lead_keys = keys_of(lead)
            earlier = [in_batch[key] for key in lead_keys if key in in_batch]
            first_new = next((value for kind, value in earlier if kind == "new"), None)
            if first_new is not None:
                if lead.source.dedup_policy == lead.source.DedupPolicy.ATTACH:
                    self.follow(first_new, lead)  # joins the deal the person's first lead creates (dedup.py)
                else:
                    deferred.append(lead)
                continue
            contact_id = next((value for kind, value in earlier if kind == "existing"), None)
            if contact_id is None:
                contact_id = next((known[key] for key in lead_keys if key in known), None)
            if contact_id is None:
                self.renew_lease()
                try:
                    contact_id = self.search_contact(lead)
                except errors.AmoCRMError as exc:
                    stop = self.stop_for(exc)
                    if stop is not None:
                        self.release(deferred, uncount=True)
                        raise stop from exc
                    if not exc.transient:
                        # A refused search says nothing about the person: create the contact rather than stall.
                        logger.warning("contact search refused", extra={"lead": str(lead.pk), "error": str(exc)})
                    else:
                        self.release([lead], error=f"Contact search failed: {exc}", backoff=True)
                        continue
                except Exception:  # noqa: BLE001 — logged by unbuildable; the batch goes on without this lead
                    self.unbuildable(lead, "contact")
                    continue
            if contact_id is not None:
                ready.append((lead, {"id": contact_id}))
                for key in lead_keys:
                    in_batch.setdefault(key, ("existing", contact_id))
            else:
                ready.append((lead, payloads.new_contact(lead, self.contact_fields_by_id)))
                for key in lead_keys:
                    in_batch[key] = ("new", lead.pk)
        if deferred:
            self.release(deferred, uncount=True)
            self.outcome.deferred += len(deferred)
        return ready

    def search_contact(self, lead: Lead) -> int | None:
        """One search (by phone, or by email when there is no phone) with every hit verified; None = new person.

        One request per new lead keeps a push near one request per lead at the 7/s limit; the
        local map covers both phone and email for everyone pushed before.
        """
        query = lead.phone or lead.email
        if not query:
            return None
        with_leads = lead.source.dedup_policy == lead.source.DedupPolicy.ATTACH
        with self.logs_linked_to([lead]):
            hits = self.client.contacts_search(query, with_leads=with_leads, context={"lead": str(lead.pk)})
        verified = [hit for hit in hits if payloads.contact_matches(hit, phone=lead.phone, email=lead.email)]
        if not verified:
            return None

        def score(hit):
            both = (payloads.contact_matches(hit, phone=lead.phone, email="")
                    and payloads.contact_matches(hit, phone="", email=lead.email))
            return (not both, hit.get("id") or 0)

        best = min(verified, key=score)
        if with_leads:
            self.remember_contact_deals(best)  # its deals' ids, for the open-deal check (dedup.py)
        learned = []
        if lead.phone and payloads.contact_matches(best, phone=lead.phone, email=""):
            learned.append(((ContactMatch.Kind.PHONE, lead.phone), best["id"]))
        if lead.email and payloads.contact_matches(best, phone="", email=lead.email):
            learned.append(((ContactMatch.Kind.EMAIL, lead.email), best["id"]))
        self.learn(learned)
        return best["id"]
