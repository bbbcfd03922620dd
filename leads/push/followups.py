"""The manager's task on each new deal: one POST /api/v4/tasks per batch, after the deals exist.

A source with `task_enabled` marks its new deals' leads `task_pending` when they are sent (adopted
deals too: we created them; a lead attached to an open deal gets none). This pass then sends up to
50 tasks in one request (docs/amocrm.md#entities), due `task_due_minutes` after the pass, of the
source's task type, for the deal's responsible user. Its failures are sorted like the notes': a
refused task is said on the lead and not retried, a transient error backs off.
"""

import random
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext

from amocrm import errors
from amocrm.values import to_int

from .. import payloads, selectors
from ..models import Lead

TASK_BATCH_SIZE = 50
TASK_RETRY_SECONDS = 60


class FollowupStep:
    """Mixed into AccountPush (engine.py): uses its client, account, outcome and sync-log linking."""

    def write_tasks(self) -> bool:
        """ONE tasks request for up to 50 sent leads whose task is still missing; True when one was sent."""
        leads = list(
            Lead.objects.filter(selectors.due(), account_id=self.account.pk, status=Lead.Status.SENT,
                                task_pending=True)
            .select_related("source").order_by("sent_at")[:TASK_BATCH_SIZE]
        )
        orphans = [lead.pk for lead in leads if not lead.amocrm_deal_id or not lead.source.task_enabled]
        if orphans:  # no deal, or the source stopped asking for tasks since: nothing to create
            Lead.objects.filter(pk__in=orphans).update(task_pending=False)
        leads = [lead for lead in leads if lead.pk not in set(orphans)]
        if not leads:
            return bool(orphans)
        now = timezone.now()
        body = [payloads.deal_task(lead, lead.source, now=now) for lead in leads]
        try:
            with self.logs_linked_to(leads):
                self.client.tasks_create(body, context=self.context(leads))
        except errors.AmoCRMError as exc:
            self._tasks_failed(exc, leads)
            return True
        Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(task_pending=False)
        self.outcome.tasks += len(leads)
        return True

    def _tasks_failed(self, exc: errors.AmoCRMError, leads: list[Lead]) -> None:
        stop = self.stop_for(exc)
        if stop is not None:
            raise stop from exc
        ids = [lead.pk for lead in leads]
        if isinstance(exc, errors.ValidationFailed):
            named = {to_int(entry.get("request_id")) for entry in exc.errors}
            named = {index for index in named if index is not None and 0 <= index < len(leads)}
            ids = [leads[index].pk for index in named] or ids
        if isinstance(exc, errors.PermanentError):
            message = gettext("The deal is in amoCRM, but amoCRM refused its task for the manager: %(error)s. "
                              "Check the source's task type and responsible user; this task is not retried.")
            Lead.objects.filter(pk__in=ids).update(task_pending=False, last_error=(message % {"error": exc})[:2000])
        else:
            delay = TASK_RETRY_SECONDS * random.uniform(1, 1.5)
            Lead.objects.filter(pk__in=ids).update(next_attempt_at=timezone.now() + timedelta(seconds=delay))
            self.outcome.retry_after(delay)
