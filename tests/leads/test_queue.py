"""config.queue: `publish` sends at once, even inside a transaction; `enqueue_on_commit` waits for the commit."""

import pytest
from django.db import transaction

from config.queue import enqueue_on_commit, publish
from leads.tasks import push_account_leads
from tests.leads.conftest import queued_task_args

pytestmark = pytest.mark.django_db


def test_publish_sends_at_once_and_enqueue_on_commit_after_the_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            assert publish(push_account_leads, 1) is True
            enqueue_on_commit(push_account_leads, 2)
            assert queued_task_args() == [[1]]  # the first is on the broker before anything commits
    assert sorted(queued_task_args()) == [[1], [2]]
