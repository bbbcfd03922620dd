"""The account's lifecycle: connect, sync metadata, test, webhook subscription, rotate key, disconnect; and the prunes.

Tokens and their refresh live in amocrm.tokens; every call goes out through amocrm.client.
"""

import copy
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, models, transaction
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext as _

from config.logging import mask_url_secrets

from . import errors, oauth
from .client import AmoCRMClient
from .hosts import normalize_account_host
from .models import Account, AmoUser, CustomField, Pipeline, Stage, SyncLog, WebhookEvent, new_webhook_key
from .tokens import long_lived_expiry, token_delete, token_store
from .transport import Transport, account_note_error
from .values import embedded, to_id
from .webhook_retry import webhook_retry_schedule

logger = logging.getLogger(__name__)

# Sent after an account is connected (or reconnected); receivers: the default lead source, resuming pushes.
account_connected = Signal()

WEBHOOK_EVENTS = ["add_lead", "update_lead", "status_lead", "delete_lead", "restore_lead", "responsible_lead"]


class ConnectError(Exception):
    """Connecting failed; the message says in plain words what happened and what to do."""


@dataclass
class ConnectResult:
    account: Account
    metadata_error: str = ""
    webhook_error: str = ""


# ---------------------------------------------------------------------------- connect


def _claim_host(account: Account, host: str) -> str:
    try:
        origin = normalize_account_host(host)
    except ValueError as exc:
        raise ConnectError(
            f"Refused to contact {host!r}: it is not an amoCRM or Kommo account host, so the secret key was not "
            f"sent there. {exc}"
        ) from exc
    other = Account.objects.filter(host=origin).exclude(pk=account.pk).first()
    if other is not None:
        raise ConnectError(f"{origin} is already connected as “{other.name}”: use that account or delete it first.")
    return origin


def account_connect(*, account: Account, host: str, code: str | None = None,
                    long_lived_token: str | None = None) -> ConnectResult:
    """Connect an account with an authorization code (OAuth) or a long-lived token, then fetch its metadata.

    The host is validated before any request carrying the client secret leaves, and it is saved
    only together with the new token: the code is exchanged on the candidate host without
    persisting it, so a failed exchange (an expired code, a callback whose `referer` names another
    host) leaves the account as it was — same host, state and token — and later refreshes keep
    going to the host that worked. On failure the account records the error and ConnectError
    says what to do.
    """
    try:
        return _connect(account=account, host=host, code=code, long_lived_token=long_lived_token)
    except ConnectError as exc:
        if account.pk is not None:
            account_note_error(account_id=account.pk, message=str(exc))
        raise


def _connect(*, account: Account, host: str, code: str | None, long_lived_token: str | None) -> ConnectResult:
    if bool(code) == bool(long_lived_token):
        raise ConnectError("Give either an authorization code or a long-lived token.")
    origin = _claim_host(account, host)
    if account.pk is None:
        account.save()

    if code:
        candidate = copy.copy(account)
        candidate.host = origin
        try:
            grant = oauth.exchange_code(Transport(candidate, allow_any_state=True), code)
        except errors.AmoCRMError as exc:
            raise ConnectError(_connect_failure_text(exc)) from exc
        values = {"access_token": grant.access_token, "refresh_token": grant.refresh_token,
                  "expires_at": grant.expires_at, "long_lived": False}
    else:
        values = {"access_token": long_lived_token, "refresh_token": "",
                  "expires_at": long_lived_expiry(long_lived_token), "long_lived": True}

    try:
        with transaction.atomic():
            token_store(account_id=account.pk, **values)
            Account.objects.filter(pk=account.pk).update(
                host=origin, state=Account.State.CONNECTED, connected_at=timezone.now(), last_error="",
                error_count=0,
            )
    except IntegrityError as exc:  # another account claimed the same host meanwhile
        raise ConnectError(f"{origin} is already connected as another account: use that account or delete it "
                           "first.") from exc
    account.refresh_from_db()
    result = ConnectResult(account=account)

    try:
        account_sync_metadata(account=account)
    except errors.AuthError as exc:
        if long_lived_token:
            Account.objects.filter(pk=account.pk).update(state=Account.State.NEEDS_REAUTH)
            raise ConnectError("amoCRM rejected the long-lived token: check it and try again.") from exc
        result.metadata_error = str(exc)
    except errors.AmoCRMError as exc:
        result.metadata_error = str(exc)
    account.refresh_from_db()
    result.webhook_error = "" if account_subscribe_webhook(account=account) else account.webhook_error
    account.refresh_from_db()
    account_connected.send(sender=Account, account=account)
    return result


def account_consent_denied(*, account: Account, error: str) -> None:
    """The operator did not allow access on amoCRM's consent page (the callback's `error`): record it."""
    account_note_error(account_id=account.pk, message=f"OAuth: {error[:100]}: access denied")


def _connect_failure_text(exc: errors.AmoCRMError) -> str:
    if isinstance(exc, errors.InvalidClient):
        return ("amoCRM does not recognise the integration: compare the integration ID, secret key and redirect "
                "URI with the integration's settings in amoCRM (a trailing slash matters), then connect again.")
    if isinstance(exc, errors.InvalidGrant):
        return ("The authorization code is expired or was already used (codes work once, for 20 minutes). "
                "Get a new one and connect again.")
    if isinstance(exc, errors.TransientError):
        return f"amoCRM could not be reached ({exc}). Try again in a minute."
    return f"amoCRM refused the connection: {exc}"


# ---------------------------------------------------------------------------- metadata


def _by_id(items: list[dict]) -> dict[int, dict]:
    """Entries keyed by their amoCRM id; one without a usable id (docs/amocrm.md#entities) could never match again."""
    return {amocrm_id: item for item in items if (amocrm_id := to_id(item.get("id")))}


def account_sync_metadata(*, account: Account) -> None:
    """Fetch account info, pipelines with stages, users and deal and contact custom fields into the local cache."""
    client = AmoCRMClient(account)
    info = client.account_get()
    pipelines = _by_id(client.pipelines_list())
    users = _by_id(client.users_list())
    fields = {amocrm_id: {**item, "entity_type": "leads"}
              for amocrm_id, item in _by_id(client.lead_custom_fields_list()).items()}
    fields.update({amocrm_id: {**item, "entity_type": "contacts"}
                   for amocrm_id, item in _by_id(client.contact_custom_fields_list()).items()})
    with transaction.atomic():
        Account.objects.filter(pk=account.pk).update(
            amocrm_account_id=to_id(info.get("id")),
            amocrm_name=info.get("name") or "",
            subdomain=info.get("subdomain") or "",
            currency=info.get("currency") or "",
            metadata_synced_at=timezone.now(),
        )
        keep = []
        for amocrm_id, item in pipelines.items():
            pipeline, _ = Pipeline.objects.update_or_create(
                account=account, amocrm_id=amocrm_id,
                defaults={"name": item.get("name") or "", "sort": item.get("sort") or 0,
                          "is_main": bool(item.get("is_main")), "is_archive": bool(item.get("is_archive"))},
            )
            keep.append(pipeline.pk)
            statuses = _by_id(embedded(item, "statuses"))
            for stage_id, status in statuses.items():
                Stage.objects.update_or_create(
                    pipeline=pipeline, amocrm_id=stage_id,
                    defaults={"name": status.get("name") or "", "sort": status.get("sort") or 0,
                              "color": status.get("color") or "", "type": status.get("type") or 0},
                )
            pipeline.stages.exclude(amocrm_id__in=list(statuses)).delete()
        account.pipelines.exclude(pk__in=keep).delete()
        for amocrm_id, item in users.items():
            AmoUser.objects.update_or_create(
                account=account, amocrm_id=amocrm_id,
                defaults={"name": item.get("name") or "", "email": item.get("email") or "",
                          "is_active": (item.get("rights") or {}).get("is_active") is not False},
            )
        account.users.exclude(amocrm_id__in=list(users)).delete()
        for amocrm_id, item in fields.items():
            CustomField.objects.update_or_create(
                account=account, amocrm_id=amocrm_id,
                defaults={"name": item.get("name") or "", "code": item.get("code") or "",
                          "type": item.get("type") or "", "enums": item.get("enums") or [],
                          "entity_type": item["entity_type"]},
            )
        account.custom_fields.exclude(amocrm_id__in=list(fields)).delete()
        main = next((pid for pid, p in pipelines.items() if p.get("is_main")), next(iter(pipelines), None))
        if main and not account.default_pipeline_id:
            Account.objects.filter(pk=account.pk).update(default_pipeline_id=main)


def account_test_connection(*, account: Account) -> dict:
    """One authenticated call (GET /api/v4/account). Also the way out of `blocked` once amoCRM lifts it."""
    if account.state == Account.State.BLOCKED:
        Account.objects.filter(pk=account.pk).update(state=Account.State.CONNECTED)
    try:
        return AmoCRMClient(account).account_get()
    except errors.AccountBlocked:
        raise
    except errors.AmoCRMError:
        account.refresh_from_db()
        raise


# ---------------------------------------------------------------------------- webhook subscription


def account_subscribe_webhook(*, account: Account, attempt: int = 0) -> bool:
    """Subscribe the account's webhook URL for deal events, unless it already is. False when amoCRM refuses.

    A passing error (429, 5xx, network) queues another try with backoff (amocrm/webhook_retry.py).
    """
    destination = account.webhook_url
    client = AmoCRMClient(account)
    try:
        existing = client.webhooks_list()
        ours = [w for w in existing if w.get("destination") == destination]
        if not ours or ours[0].get("disabled") or not set(WEBHOOK_EVENTS) <= set(ours[0].get("settings") or []):
            client.webhook_subscribe(destination, WEBHOOK_EVENTS)
    except errors.AmoCRMError as exc:
        retry_at = webhook_retry_schedule(account_id=account.pk, attempt=attempt) if exc.transient else None
        # Stored and shown on the account page, so without the URL (its key is a credential): the
        # page shows the URL separately, to those allowed to see it.
        if retry_at is not None:
            message = _("amoCRM refused the webhook subscription for now (%(reason)s). It is tried again by "
                        "itself.") % {"reason": mask_url_secrets(str(exc))}
        else:
            message = _(
                "amoCRM refused the webhook subscription (%(reason)s). Add the webhook by hand: amoCRM → Settings "
                "→ Integrations → Web hooks → Add, with the webhook URL shown on this account's page in the admin, "
                "for the events: deal added, changed, stage changed, deleted, restored, responsible changed."
            ) % {"reason": mask_url_secrets(str(exc))}
        Account.objects.filter(pk=account.pk).update(webhook_error=message, webhook_subscribed_at=None,
                                                     webhook_retry_at=retry_at)
        return False
    Account.objects.filter(pk=account.pk).update(webhook_error="", webhook_subscribed_at=timezone.now(),
                                                 webhook_state="ok", webhook_checked_at=timezone.now(),
                                                 webhook_retry_at=None)
    return True


def account_rotate_webhook_key(*, account: Account) -> bool:
    """Give the account a new webhook key, subscribe the new URL and unsubscribe the old one."""
    old_url = account.webhook_url
    account.webhook_key = new_webhook_key()
    Account.objects.filter(pk=account.pk).update(webhook_key=account.webhook_key, webhook_subscribed_at=None)
    if not account.can_call_api:
        return False
    subscribed = account_subscribe_webhook(account=account)
    try:
        AmoCRMClient(account).webhook_unsubscribe(old_url)
    except errors.AmoCRMError as exc:
        logger.warning("could not unsubscribe the old webhook URL", extra={"account": account.pk, "error": str(exc)})
    return subscribed


def account_disconnect(*, account: Account) -> None:
    """Unsubscribe the webhook when possible, delete the tokens, mark the account not connected."""
    if account.can_call_api:
        try:
            AmoCRMClient(account).webhook_unsubscribe(account.webhook_url)
        except errors.AmoCRMError as exc:
            logger.info("webhook not unsubscribed on disconnect", extra={"account": account.pk, "error": str(exc)})
    with transaction.atomic():
        token_delete(account_id=account.pk)
        Account.objects.filter(pk=account.pk).update(
            state=Account.State.NOT_CONNECTED, webhook_subscribed_at=None, connected_at=None
        )
    account.refresh_from_db()


# ---------------------------------------------------------------------------- retention

# Rows deleted per transaction by the prunes: small enough that a batch commits in a moment (no
# long lock), large enough that 3 million rows take a few hundred round trips.
PRUNE_BATCH = 5000


def _link_tables(model) -> list[tuple[str, str]]:
    """(table, column) of every many-to-many link table pointing at `model` (e.g. leads_lead_sync_logs)."""
    links = []
    for relation in model._meta.related_objects:
        if relation.many_to_many:
            through = relation.through._meta
            column = next(f.column for f in through.fields if f.is_relation and f.related_model is model)
            links.append((through.db_table, column))
        elif relation.on_delete is not models.DO_NOTHING:
            # A foreign key to the pruned rows would need the collector's cascade: refuse loudly
            # instead of leaving dangling rows (none exists today).
            raise NotImplementedError(f"{model.__name__} is referenced by {relation.related_model.__name__}")
    return links


def _delete_ids(cursor, table: str, column: str, ids: list[int]) -> None:
    table, column = connection.ops.quote_name(table), connection.ops.quote_name(column)
    if connection.vendor == "postgresql":
        cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", [ids])  # noqa: S608 — quoted names
        return
    for start in range(0, len(ids), 500):  # SQLite's limit on parameters
        chunk = ids[start:start + 500]
        cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({', '.join(['%s'] * len(chunk))})",  # noqa: S608
                       chunk)


def _prune(model, *, time_field: str, cutoff: datetime, batch_size: int) -> int:
    """Delete `model` rows older than `cutoff` in batches of raw DELETEs, link rows first; returns how many.

    Not `QuerySet.delete()`: Django's collector loads every row it deletes (with its bodies) and
    each of their link rows into memory — 2.8 million sync-log rows took 8.5 GB and 159 s — and
    holds one long transaction. Here each batch reads only ids (through the time index, resuming
    where the previous batch stopped), deletes their link rows and then the rows, and commits:
    constant memory, and locks held only for one batch.
    """
    links = _link_tables(model)
    table, pk = model._meta.db_table, model._meta.pk.column
    resume_from = None
    deleted = 0
    while True:
        with transaction.atomic():
            rows = model.objects.filter(**{f"{time_field}__lt": cutoff})
            if resume_from is not None:
                rows = rows.filter(**{f"{time_field}__gte": resume_from})
            found = list(rows.order_by(time_field).values_list("pk", time_field)[:batch_size])
            if not found:
                return deleted
            ids = [row_id for row_id, _ in found]
            with connection.cursor() as cursor:
                for link_table, column in links:
                    _delete_ids(cursor, link_table, column, ids)
                _delete_ids(cursor, table, pk, ids)
        deleted += len(ids)
        resume_from = found[-1][1]


def sync_log_prune(*, older_than_days: int, batch_size: int = PRUNE_BATCH) -> int:
    """Delete sync-log rows (and their links to leads) older than the retention; returns how many."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    return _prune(SyncLog, time_field="created_at", cutoff=cutoff, batch_size=batch_size)


def webhook_events_prune(*, older_than_days: int, batch_size: int = PRUNE_BATCH) -> int:
    """Delete webhook deliveries received before the retention, whatever their state; returns how many."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    return _prune(WebhookEvent, time_field="received_at", cutoff=cutoff, batch_size=batch_size)
