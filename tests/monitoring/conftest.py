"""Fixtures for the monitoring tests: accounts, channels, and running the evaluation and the sending."""

import pytest
import responses

from amocrm.ratelimit import AccountRateLimiter
from leads.models import LeadSource
from monitoring import services
from monitoring.models import AlertChannel, Notification
from tests.factories import make_account
from tests.foundation.conftest import private_queue, start_process  # noqa: F401 (fixtures for the process tests)


@pytest.fixture
def account(db):
    acc = make_account(name="Shop")
    AccountRateLimiter(acc.pk).reset()
    return acc


@pytest.fixture
def source(account):
    return LeadSource.objects.create(account=account, name="Order form")


@pytest.fixture
def email_channel(db):
    return AlertChannel.objects.create(name="Ops mail", kind=AlertChannel.Kind.EMAIL, language="en",
                                       email_recipients="ops@example.com, boss@example.com")


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def send_queued() -> list[float | None]:
    """What the send tasks would do: one attempt per queued notification (call the service, as the task does)."""
    return [services.notification_send(notification_id=pk)
            for pk in Notification.objects.filter(state=Notification.State.QUEUED).values_list("pk", flat=True)]
