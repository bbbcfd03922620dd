"""The admin login locks a user name out from an address after too many wrong passwords (django-axes)."""

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "the-right-password-1"


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("op", "op@example.com", PASSWORD)


def log_in(client, password, **headers):
    return client.post(LOGIN, {"username": "op", "password": password}, **headers)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_the_right_password_works(client, operator):
    response = log_in(client, PASSWORD)

    assert response.status_code == 302 and logged_in(client)


def test_after_too_many_wrong_passwords_the_right_one_is_refused_until_reset(client, operator, settings):
    assert settings.AXES_FAILURE_LIMIT == 5  # the default of AXES_FAILURE_LIMIT
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "guess")

    response = log_in(client, PASSWORD)

    assert response.status_code == 429
    assert not logged_in(client)
    page = response.content.decode()
    assert "Too many failed log-ins" in page and "axes_reset" in page
    assert PASSWORD not in page

    call_command("axes_reset_username", "op", stdout=open("/dev/null", "w"))

    assert log_in(client, PASSWORD).status_code == 302 and logged_in(client)


def test_the_limit_comes_from_the_settings(client, operator, settings):
    settings.AXES_FAILURE_LIMIT = 2
    log_in(client, "guess")
    assert log_in(client, PASSWORD).status_code == 302  # one failure is not a lockout
    client.logout()
    log_in(client, "guess")
    log_in(client, "guess")

    assert log_in(client, PASSWORD).status_code == 429


def test_the_lockout_is_per_user_name_and_address_as_client_ip_sees_it(client, operator, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "guess", HTTP_X_FORWARDED_FOR="203.0.113.7")

    assert log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    # The proxy's address is the same for everyone: another visitor behind it is not locked out.
    elsewhere = Client()
    assert log_in(elsewhere, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.9").status_code == 302
    assert logged_in(elsewhere)


def test_a_forged_forwarded_for_does_not_escape_the_lockout_without_a_trusted_proxy(client, operator, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    for index in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{index}")

    assert log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200").status_code == 429


def test_the_cool_off_ends_the_lockout(client, operator, settings):
    from datetime import timedelta

    from axes.models import AccessAttempt

    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "guess")
    assert log_in(client, PASSWORD).status_code == 429

    # As if the cool-off had passed: the attempt's last failure lies further back than AXES_COOLOFF_TIME.
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(hours=1))

    assert log_in(client, PASSWORD).status_code == 302


@pytest.mark.slow
def test_commands_print_nothing_of_axes_on_stdout(tmp_path):
    """`manage.py amocrm_connect --json` must print one JSON object: no start-up line from axes before it."""
    from tests.foundation.support import clean_env, manage

    result = manage("check", env=clean_env(DEBUG="true", LOG_LEVEL="INFO", VAR_DIR=str(tmp_path)))

    assert result.returncode == 0, result.stderr
    assert "AXES" not in result.stdout
