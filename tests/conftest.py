"""Shared fixtures (the account, amoCRM's mocked HTTP, clean Redis); refuses to run without PostgreSQL and Redis."""

import os
import socket
from urllib.parse import quote, urlparse

import pytest
import responses


def _answers(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_configure(config):
    from django.conf import settings

    config.addinivalue_line(
        "markers", "account(**kwargs): tests.factories.make_account arguments for the `account` fixture")

    problems = []
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        problems.append("DATABASE_URL must point at PostgreSQL for the tests.")
    elif not _answers(f"postgres://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}", 5432):
        problems.append(
            f"PostgreSQL does not answer at {db.get('HOST')}:{db.get('PORT') or 5432}. Start it with:\n"
            "  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
            "  (or point DATABASE_URL at a running server: postgres://user@host:port/name)"
        )
    if not settings.REDIS_URL or not _answers(settings.REDIS_URL, 6379):
        problems.append(
            f"Redis does not answer at {settings.REDIS_URL or '(REDIS_URL unset)'}. Start it with:\n"
            '  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no\n'
            "  (or point REDIS_URL at a running server: redis://host:port/15)"
        )
    if problems:
        raise pytest.UsageError("The tests need real services:\n" + "\n".join(problems))


def _delete_test_keys(*, at_exit: bool = False) -> None:
    """Delete this run's cache keys and queued tasks (and at exit its queue binding), nothing else.

    Not FLUSHDB: other test runs may be using Redis DB 15 at the same moment (their keys live
    under their own prefix and queue). Keys written outside the cache, such as the rate limiter's,
    should therefore carry settings.CACHES["default"]["KEY_PREFIX"] too, to be cleaned here.
    """
    import redis
    from django.conf import settings

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        doomed = [queue, *client.scan_iter(match=f"{queue}\x06\x16*", count=1000)]
        doomed += client.scan_iter(match=settings.CACHES["default"]["KEY_PREFIX"] + ":*", count=1000)
        if at_exit:
            doomed.append(f"_kombu.binding.{queue}")
        client.unlink(*doomed)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _clean_cache():
    """Every test starts with an empty cache (throttles, locks, idempotency windows) and an empty queue."""
    _delete_test_keys()
    yield


@pytest.fixture(autouse=True)
def _default_language():
    """Every test ends in the default language: LocaleMiddleware activates a request's language (a test's
    Accept-Language: ru) for the whole thread, and a later test would read its texts in Russian."""
    from django.utils import translation

    yield
    translation.deactivate()


@pytest.fixture(scope="session", autouse=True)
def _clean_test_keys_at_exit():
    yield
    _delete_test_keys(at_exit=True)


@pytest.fixture
def subprocess_env(transactional_db) -> dict[str, str]:
    """Environment for a worker or server a test starts: tests.settings, this run's test database and queue.

    It implies transactional_db: rows a test writes are committed, so the other process sees them.
    """
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        TEST_RUN_ID=os.environ["TEST_RUN_ID"],
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def account(request, db):
    """A connected account on the mocked amoCRM host (tests.factories.make_account), its rate limiter reset.

    make_account's arguments, when a test needs other ones (a name, the amoCRM account id its webhook
    fixtures carry, known tokens), come from a marker on the test or its module:
    `pytestmark = pytest.mark.account(amocrm_account_id=AMO_ACCOUNT_ID)`.
    """
    from tests.factories import make_account, rate_limiter_reset

    marker = request.node.get_closest_marker("account")
    if marker and marker.args:
        raise pytest.UsageError("pytest.mark.account takes make_account's keyword arguments only.")
    acc = make_account(**(marker.kwargs if marker else {}))
    rate_limiter_reset(acc.pk)
    return acc


UNREGISTERED = "Connection refused by Responses"  # how `responses` answers a call that matches no registration


@pytest.fixture
def amocrm_mock():
    """amoCRM's HTTP (and any other outside service's), mocked at the client boundary with `responses`.

    Register the answers a test needs (tests.sales.builders, tests.leads.conftest, ...); they need not
    all be used. A call nobody registered fails the test, even when the code under test survives the
    ConnectionError `responses` raises for it (as it survives a network error).
    """
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
        unregistered = unregistered_calls(mock)
    if unregistered:
        pytest.fail("Calls the test registered no answer for: " + ", ".join(unregistered))


def unregistered_calls(mock: responses.RequestsMock) -> list[str]:
    """"METHOD url" of every call the mock refused because it matched no registered answer."""
    return [f"{call.request.method} {call.request.url}" for call in mock.calls
            if isinstance(call.response, Exception) and str(call.response).startswith(UNREGISTERED)]


@pytest.fixture
def staff(client, django_user_model):
    """The test client logged in as a superuser (an integration admin who may do everything)."""
    client.force_login(django_user_model.objects.create_superuser("op", "op@example.com", "pw"))
    return client


@pytest.fixture
def staff_client(staff):
    """Another name for `staff`, as the amocrm admin tests call it."""
    return staff
