"""The push's writes: one leads/complex, leads/unsorted/forms or leads/notes request per batch, and their failures.

Each write marks its leads `write_attempted_at` before the request leaves (committed first), so an
answer that is lost sends the next attempt looking for the deals instead of creating them again
(adoption.py). A failed write is sorted by what amoCRM said (`write_failed`): account-level errors
stop the push, a validation error fails only the leads it names, anything transient backs off.
"""

import logging
import random
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from amocrm import errors
from amocrm.values import embedded, to_int

from .. import payloads, selectors
from ..models import ContactMatch, Lead
from .contacts import keys_of

logger = logging.getLogger(__name__)

# leads/complex takes at most 50 deals (docs/amocrm.md#batches-and-pagination); notes and unsorted
# batches follow it, and so does a push's claim.
BATCH_SIZE = 50
NOTE_RETRY_SECONDS = 60
NOTE_UNBUILDABLE = gettext_lazy(
    "The deal is in amoCRM, but its note (message, page, UTM, form fields) could not be built from this "
    "lead's values, so none was added; the values are still here. The worker log has the details under "
    "this lead's id; retrying will not add the note.")


def by_request_id(items: list[dict]) -> dict[str, dict]:
    """Answer items by the request_id we sent (amoCRM echoes it, as a list in leads/complex), else by position."""
    mapped = {}
    for position, item in enumerate(items):
        request_id = item.get("request_id")
        if isinstance(request_id, list):
            request_id = request_id[0] if request_id else None
        mapped[str(request_id) if request_id is not None else str(position)] = item
    return mapped


class WriteStep:
    """Mixed into AccountPush (engine.py): uses its client, field cache, outcome, lease and lead transitions."""

    def write_deals(self, ready: list[tuple[Lead, dict]]) -> None:
        """ONE leads/complex request for the batch; records deal and contact ids and learns new contacts."""
        if not ready:
            return
        body, built = [], []
        for lead, contact in ready:
            try:
                body.append(payloads.complex_deal(lead, lead.source, self.account, request_id=str(len(built)),
                                                  contact=contact, fields_by_id=self.fields_by_id,
                                                  tracking=self.tracking))
            except Exception:  # noqa: BLE001 — logged by unbuildable; the batch goes on without this lead
                self.unbuildable(lead, "deal")
                continue
            built.append((lead, contact))
        ready, leads = built, [lead for lead, _ in built]
        if not ready:
            return
        self.renew_lease()
        self._before_write(leads)
        try:
            with self.logs_linked_to(leads):
                answer = self.client.leads_complex_create(body, context=self.context(leads))
        except errors.AmoCRMError as exc:
            self.write_failed(exc, leads)
            return
        items = by_request_id(answer if isinstance(answer, list) else [])
        learned, missing = [], []
        for index, (lead, contact) in enumerate(ready):
            item = items.get(str(index))
            if not item or not item.get("id"):
                missing.append(lead)
                continue
            contact_id = item.get("contact_id") or contact.get("id")
            self.mark_sent(lead, deal_id=item["id"], contact_id=contact_id)
            self.outcome.sent += 1
            if contact_id and "id" not in contact:
                # The contact we just created holds exactly these values. (A reused one was learned
                # only by what was verified on it.)
                learned += [(key, contact_id) for key in keys_of(lead)]
        self.learn(learned)
        if missing:
            # An answer without these deals is as good as no answer: look for them before creating again.
            self.release(missing, error="amoCRM's answer did not list this deal.", backoff=True)

    def write_unsorted(self, leads: list[Lead]) -> None:
        """ONE leads/unsorted/forms request for the batch: incoming leads a manager accepts in amoCRM."""
        if not leads:
            return
        body, built = [], []
        for lead in leads:
            try:
                body.append(payloads.unsorted_form(lead, lead.source, self.account, request_id=str(len(built)),
                                                   fields_by_id=self.fields_by_id, tracking=self.tracking))
            except Exception:  # noqa: BLE001 — logged by unbuildable; the batch goes on without this lead
                self.unbuildable(lead, "unsorted")
                continue
            built.append(lead)
        leads = built
        if not leads:
            return
        self.renew_lease()
        self._before_write(leads)
        try:
            with self.logs_linked_to(leads):
                answer = self.client.unsorted_forms_create(body, context=self.context(leads))
        except errors.AmoCRMError as exc:
            self.write_failed(exc, leads)
            return
        items = by_request_id(answer)
        missing = []
        for index, lead in enumerate(leads):
            item = items.get(str(index)) or {}
            deals, contacts = embedded(item, "leads"), embedded(item, "contacts")
            if not deals or not deals[0].get("id"):
                missing.append(lead)
                continue
            self.mark_sent(lead, deal_id=deals[0]["id"], contact_id=contacts[0].get("id") if contacts else None,
                           unsorted_uid=str(item.get("uid") or ""))
            self.outcome.sent += 1
        if missing:
            self.release(missing, error="amoCRM's answer did not list this incoming lead.", backoff=True)

    def write_notes(self) -> bool:
        """ONE leads/notes request for up to 50 sent leads whose note is still missing; True when one was sent."""
        leads = list(
            Lead.objects.filter(selectors.due(), account_id=self.account.pk, status=Lead.Status.SENT,
                                note_pending=True)
            .select_related("source").order_by("sent_at")[:BATCH_SIZE]
        )
        orphans = [lead.pk for lead in leads if not lead.amocrm_deal_id]
        if orphans:  # no deal to note (never expected): do not keep asking for a push
            Lead.objects.filter(pk__in=orphans).update(note_pending=False)
        leads = [lead for lead in leads if lead.amocrm_deal_id]
        body, unbuildable = [], []
        for lead in leads:
            text, problem = self.note_of(lead)
            if problem:
                unbuildable.append(lead.pk)
            else:
                body.append(payloads.deal_note(deal_id=lead.amocrm_deal_id, text=text))
        if unbuildable:  # the deal is in amoCRM: say so on the lead and stop asking for its note
            Lead.objects.filter(pk__in=unbuildable).update(note_pending=False, last_error=str(NOTE_UNBUILDABLE))
            leads = [lead for lead in leads if lead.pk not in set(unbuildable)]
        if not leads:
            return bool(unbuildable)
        try:
            with self.logs_linked_to(leads):
                self.client.lead_notes_create(body, context=self.context(leads))
        except errors.AmoCRMError as exc:
            stop = self.stop_for(exc)
            if stop is not None:
                raise stop from exc
            ids = [lead.pk for lead in leads]
            if isinstance(exc, errors.ValidationFailed):
                named = {to_int(entry.get("request_id")) for entry in exc.errors}
                named = {index for index in named if index is not None and 0 <= index < len(leads)} or set(
                    range(len(leads)))
                ids = [leads[index].pk for index in named]
            if isinstance(exc, errors.PermanentError):
                # The deal is in amoCRM; only its note is lost. Say so on the lead and stop trying.
                Lead.objects.filter(pk__in=ids).update(note_pending=False,
                                                       last_error=f"The note was refused: {exc}"[:2000])
            else:
                delay = NOTE_RETRY_SECONDS * random.uniform(1, 1.5)
                Lead.objects.filter(pk__in=ids).update(next_attempt_at=timezone.now() + timedelta(seconds=delay))
                self.outcome.retry_after(delay)
            return True
        Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(note_pending=False)
        self.outcome.notes += len(leads)
        return True

    @staticmethod
    def note_of(lead: Lead) -> tuple[str, str]:
        """The note's text and "", or "" and what to tell the operator when it could not be built."""
        try:
            if lead.attached_to_deal:
                return payloads.attached_note_text(lead, lead.source), ""
            return payloads.note_text(lead, lead.source), ""
        except Exception:
            logger.exception("lead note could not be built", extra={"lead": str(lead.pk)})
            return "", str(NOTE_UNBUILDABLE)

    def write_failed(self, exc: errors.AmoCRMError, leads: list[Lead]) -> None:
        """Sort a failed write: account-level → stop; validation → fail the named; transient → back off."""
        stop = self.stop_for(exc)
        if stop is not None:
            # 429, a block page, 401 and a disconnected account are answered before anything is created.
            self.release(leads, keep_write_mark=False, uncount=True)
            raise stop from exc
        if isinstance(exc, errors.ValidationFailed):
            by_index = {}
            for entry in exc.errors:
                index = to_int(entry.get("request_id"))
                if index is not None and 0 <= index < len(leads):
                    text = f"{entry.get('path')}: {entry.get('code')} {entry.get('detail') or ''}".strip()
                    by_index.setdefault(index, []).append(text)
            if not by_index:
                self.fail(leads, f"amoCRM rejected the batch: {exc}")
                return
            for index, texts in by_index.items():
                self.fail([leads[index]], "amoCRM rejected this lead: " + "; ".join(texts))
                self._forget_contact(leads[index])
            # amoCRM validates the whole request before creating anything: the rest go again at once.
            innocent = [lead for index, lead in enumerate(leads) if index not in by_index]
            self.release(innocent, keep_write_mark=False, uncount=True)
            return
        if isinstance(exc, errors.PermanentError):
            self.fail(leads, f"amoCRM refused the request: {exc}")
            return
        # Transient: a timeout, a reset or a 5xx may come after amoCRM created the deals. Keep the mark.
        self.release(leads, error=str(exc), backoff=True)

    def _before_write(self, leads) -> None:
        # Committed before the request leaves: if its answer is lost, the next push searches first.
        Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(write_attempted_at=timezone.now())

    def _forget_contact(self, lead: Lead) -> None:
        """A rejected lead may have named a contact merged or deleted in amoCRM: search afresh next time."""
        keys = keys_of(lead)
        if keys:
            query = Q()
            for kind, value in keys:
                query |= Q(kind=kind, value=value)
            ContactMatch.objects.filter(query, account=self.account).delete()
