"""Errors in plain words: every stored error text gets what happened / what next / what to do, detail folded."""

import html
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from amocrm import error_messages, errors
from amocrm.models import Account, SyncLog
from tests.factories import make_account

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("text", "kind"), [
    ("amoCRM answered 429 Too Many Requests.", "rate_limited"),
    ("Network error talking to amoCRM: ConnectionError: HTTPConnectionPool(host='x', port=80): Max retries "
     "exceeded with url: /api/v4/leads/complex", "network"),
    ("amoCRM did not answer in time (ReadTimeout).", "timeout"),
    ("amoCRM answered 503.", "server_error"),
    ("Gave up after 8 attempts: amoCRM answered 503.", "gave_up"),
    ("amoCRM blocked this account (403 with its HTML block page): every call stops", "blocked"),
    ("The refresh token was already used or revoked", "reauth"),
    ("No calls are made for this account: it is needs re-authorization.", "unavailable"),
    ("amoCRM rejected this lead: #0 name: NotSupportedChoice", "validation"),
    ("amoCRM answered 404 for /api/v4/leads/5.", "not_found"),
    ("This lead could not be turned into an amoCRM deal: building it failed", "unbuildable"),
    ("The note was refused: amoCRM answered 400: Bad Request", "note"),
    ("amoCRM refused the webhook subscription (amoCRM answered 429 Too Many Requests.).", "webhook"),
    ("amoCRM answered 402: Payment Required", "refused"),
    ("KeyError: 'weird'", "unknown"),
])
def test_every_stored_error_text_has_a_kind_with_a_full_explanation(text, kind):
    explanation = error_messages.explain(text)
    assert explanation.kind == kind
    assert explanation.what and explanation.next and explanation.todo
    assert "Error:" not in explanation.what and "Traceback" not in explanation.what


@pytest.mark.parametrize(("exc", "kind"), [
    (errors.RateLimited("limiter"), "rate_limited"),
    (errors.TransientError("amoCRM did not answer in time (ReadTimeout)."), "timeout"),
    (errors.TransientError("amoCRM answered 502.", status=502), "server_error"),
    (errors.TokenRevoked("gone"), "reauth"),
    (errors.InvalidGrant("code"), "invalid_grant"),
    (errors.ValidationFailed("bad", errors=[]), "validation"),
])
def test_exceptions_are_explained_by_their_class(exc, kind):
    assert error_messages.explain_exception(exc).kind == kind


def test_the_sync_log_status_decides_when_the_text_says_little():
    assert error_messages.kind_of("", http_status=429) == "rate_limited"
    assert error_messages.kind_of("oops", http_status=502) == "server_error"


def test_the_account_page_explains_the_last_error_and_folds_the_technical_text(staff_client):
    account = make_account()
    Account.objects.filter(pk=account.pk).update(
        last_error="Network error talking to amoCRM: ConnectionError: Max retries exceeded",
        last_error_at=timezone.now())
    page = html.unescape(staff_client.get(reverse("admin:amocrm_account_change", args=[account.pk])).content.decode())
    assert "amoCRM could not be reached: a network error." in page
    assert "retried automatically" in page
    assert "<details><summary>Technical detail</summary>" in page and "Max retries exceeded" in page
    listing = html.unescape(staff_client.get(reverse("admin:amocrm_account_changelist")).content.decode())
    assert "amoCRM could not be reached" in listing and "Max retries exceeded" not in listing


def test_an_error_followed_by_a_success_is_marked_resolved(staff_client):
    account = make_account()
    now = timezone.now()
    Account.objects.filter(pk=account.pk).update(last_error="amoCRM answered 429 Too Many Requests.",
                                                 last_error_at=now - timedelta(minutes=5), last_success_at=now)
    page = html.unescape(staff_client.get(reverse("admin:amocrm_account_change", args=[account.pk])).content.decode())
    assert "Resolved: a later call succeeded at" in page
    listing = html.unescape(staff_client.get(reverse("admin:amocrm_account_changelist")).content.decode())
    assert "Resolved: a later call succeeded." in listing


def test_the_sync_log_page_explains_its_error(staff_client):
    account = make_account()
    log = SyncLog.objects.create(account=account, operation="leads.complex", status=SyncLog.Status.ERROR,
                                 http_status=503, error="amoCRM answered 503.")
    page = html.unescape(staff_client.get(reverse("admin:amocrm_synclog_change", args=[log.pk])).content.decode())
    assert "amoCRM had a temporary failure on its side." in page and "amoCRM answered 503." in page


def test_explanations_and_buttons_read_in_russian():
    from django.utils import translation

    from amocrm.admin.account_buttons import BY_KEY

    with translation.override("ru"):
        explanation = error_messages.explain("amoCRM answered 503.")
        assert explanation.what == "Временный сбой на стороне amoCRM."
        assert explanation.next == "Запрос повторяется автоматически с растущими паузами."
        assert str(BY_KEY["pause"].label) == "Приостановить отправку"


@pytest.mark.parametrize("app", ["amocrm", "leads", "sales"])
def test_every_msgid_of_these_catalogues_has_a_russian_translation(app):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / app / "locale/ru/LC_MESSAGES/django.po").read_text()
    entries = [block for block in text.split("\n\n")[1:] if "msgid" in block and "#~" not in block]
    untranslated = [block for block in entries if re.search(r'^msgstr(\[\d\])? ""\n?$', block, re.M)
                    and not re.search(r'^msgstr(\[\d\])? ""\n"', block, re.M)]
    assert untranslated == []


@pytest.mark.parametrize(("text", "kind"), [
    ("Из этой заявки не удалось собрать сделку amoCRM: сборка не прошла на данных этой заявки.", "unbuildable"),
    ("Сделка есть в amoCRM, но примечание к ней (сообщение, страница, UTM, поля формы) не удалось собрать",
     "note"),
    ("amoCRM пока отклонил подписку на вебхук (amoCRM answered 429 Too Many Requests.).", "webhook"),
])
def test_errors_stored_in_russian_by_a_russian_worker_are_recognised(text, kind):
    assert error_messages.kind_of(text) == kind
