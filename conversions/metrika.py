"""The scheduled upload of won sales to Yandex Metrika's offline-conversion API (docs/conversions.md).

Only when YANDEX_METRIKA_COUNTER and YANDEX_METRIKA_TOKEN are both set. One upload per id type (ClientId,
then Yclid) of the due sales won in the last 21 days — Metrika joins a conversion only to a visit of the
last 21 days. A 200 records the sales `uploaded` with Metrika's upload id; a 4xx records them `failed` with
Metrika's message (they are not sent again by themselves); a network error or 5xx records nothing, so the
next run sends them again. The OAuth token goes in a header only: never into a log line or an error.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from config.locks import hold_locks, lock_key

from .models import ConversionExport
from .services import IdType, Platform, due, render

logger = logging.getLogger(__name__)
API = "https://api-metrika.yandex.net/management/v1/counter/{counter}/offline_conversions/upload"
CLIENT_ID_TYPES = {IdType.CLIENT_ID: "CLIENT_ID", IdType.YCLID: "YCLID"}
JOIN_DAYS = 21
TIMEOUT = 60


@dataclass
class UploadOutcome:
    """What one run did: sales uploaded, refused, and left for the next run (with why)."""

    uploaded: int = 0
    failed: int = 0
    retry_later: list[str] = field(default_factory=list)


def configured() -> bool:
    return bool(settings.YANDEX_METRIKA_COUNTER and settings.YANDEX_METRIKA_TOKEN)


REFUSED_HINT = gettext_lazy("Fix the cause (the goal CONVERSIONS_YANDEX_TARGET, the counter, the token's access), "
                            "then delete these records to send the sales again.")


def _refusal(response: requests.Response) -> str:
    """Metrika's own words for a refused upload ({"message": …, "errors": [{"message": …}]}), and what to do."""
    body = _json_object(response)
    details = [item.get("message", "") for item in body.get("errors", []) if isinstance(item, dict)]
    text = body.get("message") or "; ".join(filter(None, details)) or response.text[:500]
    # Stored on the records and read by the operator: in the site's language (LANGUAGE_CODE in the worker).
    return gettext("Yandex Metrika refused the upload (%(status)s): %(text)s. %(hint)s") % {
        "status": response.status_code, "text": text, "hint": REFUSED_HINT}


def _json_object(response: requests.Response) -> dict:
    """The answer's JSON object; {} for a body that is not JSON or not an object."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _post(content: bytes, id_type: str) -> requests.Response:
    return requests.post(
        API.format(counter=settings.YANDEX_METRIKA_COUNTER),
        params={"client_id_type": CLIENT_ID_TYPES[id_type], "comment": "amoCRM won sales"},
        headers={"Authorization": f"OAuth {settings.YANDEX_METRIKA_TOKEN}"},
        files={"file": ("conversions.csv", content, "text/csv")},
        timeout=TIMEOUT,
    )


def upload_id_type(id_type: str, outcome: UploadOutcome) -> None:
    """Upload the due sales of one id type, and record the answer on them."""
    # The export lock: a download running meanwhile waits, and never carries a sale this upload carries.
    with hold_locks([lock_key("conversions.export", Platform.YANDEX)]):
        since = timezone.localdate() - timedelta(days=JOIN_DAYS)
        items = due(Platform.YANDEX, id_type, date_from=since)
        if not items:
            return
        try:
            response = _post(render(Platform.YANDEX, id_type, [item.row for item in items]), id_type)
        except requests.RequestException as exc:
            outcome.retry_later.append(f"{id_type}: {type(exc).__name__}")
            logger.warning("metrika upload: network error, retried next run", extra={"id_type": id_type})
            return
        if response.status_code >= 500 or response.status_code == 429:
            outcome.retry_later.append(f"{id_type}: HTTP {response.status_code}")
            logger.warning("metrika upload: HTTP %s, retried next run", response.status_code)
            return
        now = timezone.now()
        if response.status_code == 200:
            # Accepted: recorded even when the answer's body is not what we expect (the file is in Metrika now;
            # sending it again would count the sales twice).
            uploading = _json_object(response).get("uploading")
            upload_id = str(uploading.get("id", "")) if isinstance(uploading, dict) else ""
            records = [item.record(Platform.YANDEX, id_type, state=ConversionExport.State.UPLOADED,
                                   upload_id=upload_id, uploaded_at=now) for item in items]
            outcome.uploaded += len(records)
        else:
            error = _refusal(response)
            records = [item.record(Platform.YANDEX, id_type, state=ConversionExport.State.FAILED, error=error)
                       for item in items]
            outcome.failed += len(records)
            logger.error("metrika upload refused", extra={"status": response.status_code, "sales": len(records)})
        with transaction.atomic():
            ConversionExport.objects.bulk_create(records)


def upload_due() -> UploadOutcome | None:
    """Upload every due sale to Yandex Metrika, ClientId first; None when the upload is not configured."""
    if not configured():
        return None
    outcome = UploadOutcome()
    for id_type in (IdType.CLIENT_ID, IdType.YCLID):
        upload_id_type(id_type, outcome)
    return outcome
