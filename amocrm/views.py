"""amoCRM-facing views: the OAuth callback page and the webhook receiver."""

import hashlib
import logging

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from config.net import client_ip
from config.queue import enqueue_on_commit
from monitoring import metrics

from . import error_messages
from .models import Account, WebhookEvent
from .oauth import StateError, read_state
from .services import ConnectError, account_connect, account_consent_denied
from .tasks import process_webhook_event
from .webhooks.ingest import claimed_account_id
from .webhooks.throttle import webhook_throttle_check

logger = logging.getLogger(__name__)

WEBHOOK_MAX_BODY = 1024 * 1024
# Request headers kept with a delivery: enough to debug, nothing that could hold a credential.
KEPT_HEADERS = ("Content-Type", "Content-Length", "User-Agent", "X-Forwarded-For", "X-Request-ID")


def _result(request, *, ok: bool, title: str, message: str, account: Account | None = None, status: int = 200):
    return render(request, "amocrm/oauth_result.html",
                  {"ok": ok, "title": title, "message": message, "account": account}, status=status)


@never_cache
@require_GET
def oauth_callback(request):
    """GET /amocrm/oauth/callback/?code=&state=&referer= — finish connecting an account."""
    if request.GET.get("from_widget"):
        return _result(request, ok=False, status=400, title=_("Installed from the amoCRM marketplace"),
                       message=_("This integration is connected from its own admin: open the admin, "
                                 "amoCRM accounts → your account → Connect."))
    user_id = request.user.pk if request.user.is_authenticated and request.user.is_staff else None
    try:
        account_pk = read_state(request.GET.get("state", ""), user_id=user_id)
    except StateError as exc:
        hint = "" if user_id else " " + _("Log in to the admin in this browser first.")
        return _result(request, ok=False, status=400, title=_("This connect link is not valid"),
                       message=f"{exc}{hint} " + _("Start again from the account page in the admin."))
    account = Account.objects.filter(pk=account_pk).first()
    if account is None:
        return _result(request, ok=False, status=404, title=_("Account not found"),
                       message=_("The account this connection was started for no longer exists."))
    # As for the admin's Connect button: the state may predate a permission that was taken away since.
    if not request.user.has_perm("amocrm.change_account"):
        return _result(request, ok=False, status=403, title=_("Not allowed"),
                       message=_("You may not connect amoCRM accounts: ask an administrator for the permission to "
                                 "change accounts."))
    if request.GET.get("error"):
        account_consent_denied(account=account, error=request.GET["error"])
        message = _("Access was not granted in amoCRM, so nothing was connected. Click Connect again and allow "
                    "access.")
        return _result(request, ok=False, status=400, title=_("Access denied"), message=message, account=account)
    code = request.GET.get("code", "")
    if not code:
        return _result(request, ok=False, status=400, title=_("No authorization code"),
                       message=_("amoCRM did not send an authorization code. Start the connection again."),
                       account=account)
    try:
        result = account_connect(account=account, host=request.GET.get("referer", ""), code=code)
    except ConnectError as exc:  # the service recorded it on the account
        return _result(request, ok=False, status=400, title=_("Not connected"), message=str(exc),
                       account=account)
    # In plain words, as the admin's code-or-token page says them: not an exception's technical text.
    notes = [error_messages.one_line(n) for n in (result.metadata_error, result.webhook_error) if n]
    message = _("Connected to %(name)s.") % {"name": result.account.amocrm_name or result.account.host}
    if notes:
        message += " " + " ".join(notes)
    return _result(request, ok=True, title=_("Connected"), message=message, account=result.account)


def _read_to_end(stream, limit: int) -> bytes:
    """At most `limit` bytes of a stream the server ends itself (gunicorn's wsgi.input_terminated)."""
    chunks, size = [], 0
    while size < limit:
        chunk = stream.read(min(64 * 1024, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _too_large() -> JsonResponse:
    return JsonResponse({"errors": {"detail": ["Body over 1 MiB."]}}, status=413)


@csrf_exempt
@metrics.counts_webhook_deliveries
@require_POST
def webhook_receive(request, key: str):
    """POST /api/webhooks/amocrm/<key>/ — authenticate, store the raw delivery, enqueue on commit, answer 200."""
    account = Account.objects.filter(webhook_key=key).only("pk", "webhook_key", "amocrm_account_id").first()
    # The lookup found the row by key; compare again in constant time so timing reveals nothing.
    if account is None or not constant_time_compare(account.webhook_key, key):
        return JsonResponse({"errors": {"detail": ["Unknown webhook key."]}}, status=404)
    retry_after = webhook_throttle_check(key)
    if retry_after:
        response = JsonResponse({"errors": {"detail": ["Too many deliveries for this webhook URL."]}}, status=429)
        response["Retry-After"] = str(retry_after)
        return response
    length = request.META.get("CONTENT_LENGTH")
    if not length and request.META.get("HTTP_TRANSFER_ENCODING"):
        # A chunked body has no Content-Length, and Django reads only Content-Length bytes (none):
        # read the stream to its end when the server ends it (gunicorn does), else refuse, since
        # nobody can say where the body ends.
        if not request.META.get("wsgi.input_terminated"):
            return JsonResponse({"errors": {"detail": ["Send a Content-Length."]}}, status=411)
        body = _read_to_end(request.META["wsgi.input"], WEBHOOK_MAX_BODY + 1)
    else:
        if length and length.isdigit() and int(length) > WEBHOOK_MAX_BODY:
            return _too_large()
        body = request.read(WEBHOOK_MAX_BODY + 1)
    if len(body) > WEBHOOK_MAX_BODY:
        return _too_large()

    event = WebhookEvent(
        account=account,
        remote_ip=client_ip(request),
        headers={h: request.headers[h] for h in KEPT_HEADERS if h in request.headers},
        content_type=(request.content_type or "")[:200],
        body=body,
        body_sha256=hashlib.sha256(body).hexdigest(),
    )
    try:
        claimed = claimed_account_id(body, request.content_type)
    except Exception:  # noqa: BLE001 — an authenticated delivery is always stored; the task parses it fully
        logger.warning("webhook account peek failed", exc_info=True, extra={"account": account.pk})
        claimed = None
    if claimed is not None and account.amocrm_account_id and claimed != account.amocrm_account_id:
        # Kept as `rejected` (never processed) so the operator sees who is posting with this key.
        event.state = WebhookEvent.State.REJECTED
        event.error = f"account[id] {claimed} is not this account's id {account.amocrm_account_id}."
        event.save()
        logger.warning("webhook for another amoCRM account refused",
                       extra={"account": account.pk, "claimed_account_id": claimed, "webhook_event": event.pk})
        return JsonResponse({"errors": {"detail": ["account[id] does not match this webhook URL."]}}, status=403)

    # Stored first, enqueued after commit: with the broker down the row waits for the sweeper,
    # and a body we cannot parse still gets its 200 (it fails visibly in the task), so amoCRM
    # never disables the endpoint over our problems.
    event.save()
    enqueue_on_commit(process_webhook_event, event.pk)
    return HttpResponse("ok", content_type="text/plain")
