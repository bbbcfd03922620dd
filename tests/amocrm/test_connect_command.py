"""manage.py amocrm_connect takes its secrets from the environment or standard input, not only the command line."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from amocrm.management.commands.amocrm_connect import Command
from amocrm.models import Account
from tests.amocrm.test_oauth import TOKEN_ANSWER, mock_metadata
from tests.factories import TOKEN_URL

pytestmark = pytest.mark.django_db

BASE = ["--host", "sandbox.test", "--client-id", "cid", "--redirect-uri", "https://site/amocrm/oauth/callback/"]
SECRET_VARIABLES = ("AMOCRM_CLIENT_SECRET", "AMOCRM_CODE", "AMOCRM_LONG_LIVED_TOKEN")


@pytest.fixture(autouse=True)
def no_secrets_in_the_environment(monkeypatch):
    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def exchanged(amocrm_mock) -> dict:
    return json.loads(next(c for c in amocrm_mock.calls if c.request.url == TOKEN_URL).request.body)


def test_the_secret_and_the_code_can_come_from_the_environment(amocrm_mock, monkeypatch):
    monkeypatch.setenv("AMOCRM_CLIENT_SECRET", "env-secret-1234")
    monkeypatch.setenv("AMOCRM_CODE", "env-code-5678")
    amocrm_mock.post(TOKEN_URL, json=TOKEN_ANSWER)
    mock_metadata(amocrm_mock)

    call_command("amocrm_connect", *BASE, stdout=StringIO())

    sent = exchanged(amocrm_mock)
    assert (sent["client_secret"], sent["code"]) == ("env-secret-1234", "env-code-5678")
    assert Account.objects.get().client_secret == "env-secret-1234"


def test_a_long_lived_token_can_come_from_the_environment(amocrm_mock, monkeypatch):
    monkeypatch.setenv("AMOCRM_CLIENT_SECRET", "env-secret-1234")
    monkeypatch.setenv("AMOCRM_LONG_LIVED_TOKEN", "LLT-from-env")
    mock_metadata(amocrm_mock)

    call_command("amocrm_connect", *BASE, stdout=StringIO())

    account = Account.objects.get()
    assert account.token.long_lived and account.token.access_token == "LLT-from-env"
    assert amocrm_mock.calls[0].request.headers["Authorization"] == "Bearer LLT-from-env"


def test_a_dash_reads_each_value_from_standard_input_in_order(amocrm_mock, monkeypatch):
    amocrm_mock.post(TOKEN_URL, json=TOKEN_ANSWER)
    mock_metadata(amocrm_mock)

    monkeypatch.setattr("sys.stdin", StringIO("stdin-secret-1234\nstdin-code-5678\n"))
    call_command("amocrm_connect", *BASE, "--client-secret", "-", "--code", "-", stdout=StringIO())

    sent = exchanged(amocrm_mock)
    assert (sent["client_secret"], sent["code"]) == ("stdin-secret-1234", "stdin-code-5678")


def test_a_long_lived_token_can_come_from_standard_input(amocrm_mock, monkeypatch):
    monkeypatch.setenv("AMOCRM_CLIENT_SECRET", "env-secret-1234")
    mock_metadata(amocrm_mock)

    monkeypatch.setattr("sys.stdin", StringIO("LLT-from-stdin\r\n"))
    call_command("amocrm_connect", *BASE, "--long-lived-token", "-", stdout=StringIO())

    assert Account.objects.get().token.access_token == "LLT-from-stdin"


def test_the_command_line_still_works_and_wins_over_the_environment(amocrm_mock, monkeypatch):
    monkeypatch.setenv("AMOCRM_CLIENT_SECRET", "env-secret")
    monkeypatch.setenv("AMOCRM_LONG_LIVED_TOKEN", "LLT-from-env")
    amocrm_mock.post(TOKEN_URL, json=TOKEN_ANSWER)
    mock_metadata(amocrm_mock)

    call_command("amocrm_connect", *BASE, "--client-secret", "flag-secret", "--code", "flag-code", stdout=StringIO())

    sent = exchanged(amocrm_mock)
    assert (sent["client_secret"], sent["code"]) == ("flag-secret", "flag-code")
    assert not Account.objects.get().token.long_lived


@pytest.mark.parametrize(("args", "env", "stdin", "message"), [
    pytest.param(["--code", "c"], {}, "", "AMOCRM_CLIENT_SECRET", id="no-secret"),
    pytest.param(["--client-secret", "s"], {}, "", "AMOCRM_CODE", id="no-grant"),
    pytest.param(["--client-secret", "s"], {"AMOCRM_CODE": "c", "AMOCRM_LONG_LIVED_TOKEN": "t"}, "",
                 "only one", id="both-grants-in-the-environment"),
    pytest.param(["--client-secret", "-", "--code", "-"], {}, "only-the-secret\n", "standard input",
                 id="stdin-ends-early"),
    pytest.param(["--client-secret", "-", "--code", "c"], {}, "\n", "standard input", id="empty-line"),
])
def test_a_missing_or_ambiguous_value_is_explained_before_any_request(amocrm_mock, monkeypatch, args, env, stdin,
                                                                      message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    monkeypatch.setattr("sys.stdin", StringIO(stdin))
    with pytest.raises(CommandError, match=message):
        call_command("amocrm_connect", *BASE, *args, stdout=StringIO())

    assert len(amocrm_mock.calls) == 0
    assert not Account.objects.exists()


def test_help_says_where_secrets_can_come_from():
    text = Command().create_parser("manage.py", "amocrm_connect").format_help()

    for name in SECRET_VARIABLES:
        assert name in text
    assert "standard input" in text
