"""Account host allow-list, consent page choice, and encryption at rest."""

import pytest
from django.db import connection
from django.test import override_settings

from amocrm.crypto import redact
from amocrm.hosts import UntrustedHost, consent_page_url, normalize_account_host
from tests.factories import make_account


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("example.amocrm.ru", "https://example.amocrm.ru"),
        ("https://Example.amocrm.ru/", "https://example.amocrm.ru"),
        ("shop.amocrm.com", "https://shop.amocrm.com"),
        ("shop.kommo.com", "https://shop.kommo.com"),
        ("sandbox.test", "http://sandbox.test"),
        ("http://sandbox.test", "http://sandbox.test"),
    ],
)
def test_it_accepts_account_hosts(given, origin):
    assert normalize_account_host(given) == origin


@pytest.mark.parametrize(
    "given",
    [
        "evil.com",
        "example.amocrm.ru.evil.com",
        "evilamocrm.ru",
        "http://example.amocrm.ru",
        "https://example.amocrm.ru:8443",
        "https://user:pw@example.amocrm.ru",
        "https://example.amocrm.ru/path",
        "www.amocrm.ru",
        "a.b.amocrm.ru",
        "amocrm.ru",
        "",
        "https://sandbox.test",
    ],
)
def test_it_refuses_everything_else(given):
    with pytest.raises(UntrustedHost):
        normalize_account_host(given)


def test_consent_page_follows_the_host_family():
    assert consent_page_url("https://example.amocrm.ru") == "https://www.amocrm.ru/oauth"
    assert consent_page_url("https://example.kommo.com") == "https://www.kommo.com/oauth"
    assert consent_page_url("https://example.amocrm.com") == "https://www.kommo.com/oauth"
    assert consent_page_url("http://sandbox.test") == "http://sandbox.test/oauth"
    with override_settings(AMOCRM_OAUTH_URL="https://oauth.example/consent"):
        assert consent_page_url("https://example.amocrm.ru") == "https://oauth.example/consent"


@pytest.mark.django_db
def test_secrets_are_not_stored_in_clear():
    account = make_account(access_token="ACCESS-SECRET-abcd", refresh_token="REFRESH-SECRET-wxyz")
    account.client_secret = "CLIENT-SECRET-1234"
    account.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM amocrm_account WHERE id = %s", [account.pk])
        (stored_secret,) = cursor.fetchone()
        cursor.execute("SELECT access_token, refresh_token FROM amocrm_token WHERE account_id = %s", [account.pk])
        stored_tokens = cursor.fetchone()
    dump = " ".join([stored_secret, *stored_tokens])
    for secret in ("CLIENT-SECRET-1234", "ACCESS-SECRET-abcd", "REFRESH-SECRET-wxyz"):
        assert secret not in dump
    assert stored_secret.startswith("fernet:")
    account.refresh_from_db()
    assert account.client_secret == "CLIENT-SECRET-1234"
    assert account.token.access_token == "ACCESS-SECRET-abcd"


@pytest.mark.django_db
def test_str_and_redaction_show_at_most_four_characters():
    account = make_account(access_token="ACCESS-SECRET-abcd")
    assert "ACCESS" not in str(account.token)
    assert str(account.token).endswith(f"…abcd for account {account.pk}")
    assert redact("short") == "…"
    assert redact("0123456789") == "…6789"
    assert "client-secret" not in str(account)


@pytest.mark.django_db
def test_rotation_command_reencrypts_with_the_new_key(settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old_key = settings.FIELD_ENCRYPTION_KEY[0]
    account = make_account(access_token="ACCESS-1")
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = [new_key, old_key]
    call_command("amocrm_rotate_encryption", stdout=open("/dev/null", "w"))
    settings.FIELD_ENCRYPTION_KEY = [new_key]  # the old key is gone: everything must still decrypt
    account.refresh_from_db()
    assert account.client_secret == "client-secret-1"
    assert account.token.access_token == "ACCESS-1"


@pytest.mark.parametrize(
    "given",
    [
        "ex\u2488ample.amocrm.ru",  # ⒈ : the idna codec maps it to "1." — a different host with an extra label
        "\uff45xample.amocrm.ru",  # fullwidth e
        "exampl\u0435.amocrm.ru",  # Cyrillic е, looks like e
        "\u043f\u0440\u0438\u043c\u0435\u0440.amocrm.ru",  # a Cyrillic subdomain
        "stra\u00dfe.amocrm.ru",  # ß
        "ex\u00b2.amocrm.ru",  # superscript two
        "exa\u00admple.amocrm.ru",  # soft hyphen
        "exa\u200dmple.amocrm.ru",  # zero-width joiner
        "example.amocrm\uff0eru",  # fullwidth full stop
        "ex_ample.amocrm.ru",
        "-example.amocrm.ru",
        "example-.amocrm.ru",
        "xn--e1afmkfd.amocrm.ru",  # an IDN in its ASCII form: amoCRM subdomains are never IDNs
        "ab--cd.amocrm.ru",
        "a" * 64 + ".amocrm.ru",
        "example.amocrm.ru.",
    ],
)
def test_it_refuses_hosts_that_are_not_plain_ascii_labels(given):
    with pytest.raises(UntrustedHost):
        normalize_account_host(given)


def test_it_accepts_plain_labels_up_to_63_characters():
    assert normalize_account_host("a" * 63 + ".amocrm.ru") == "https://" + "a" * 63 + ".amocrm.ru"
    assert normalize_account_host("my-shop-2.kommo.com") == "https://my-shop-2.kommo.com"
