"""Fixtures for the monitoring tests: a source, channels, and running the sending.

The account is tests/conftest.py's; the monitoring tests name it "Shop" with pytest.mark.account(name="Shop").
"""

import pytest

from leads.models import LeadSource
from monitoring import services
from monitoring.models import AlertChannel, Notification
from tests.foundation.conftest import private_queue, start_process  # noqa: F401 (fixtures for the process tests)


@pytest.fixture
def source(account):
    return LeadSource.objects.create(account=account, name="Order form")


@pytest.fixture
def email_channel(db):
    return AlertChannel.objects.create(name="Ops mail", kind=AlertChannel.Kind.EMAIL, language="en",
                                       email_recipients="ops@example.com, boss@example.com")


def send_queued() -> list[float | None]:
    """What the send tasks would do: one attempt per queued notification (call the service, as the task does)."""
    return [services.notification_send(notification_id=pk)
            for pk in Notification.objects.filter(state=Notification.State.QUEUED).values_list("pk", flat=True)]
