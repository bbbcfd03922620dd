"""The account page in Chromium: lead defaults chosen by name, a test lead sent through the push, pause and resume.

amoCRM is mocked at the client boundary (`amocrm_mock`); the push a button queues is run by the test itself
(no worker here), as the worker would run it. Screenshots: var/screenshots/test_the_account_page_*.png.
"""

import pytest

from amocrm.models import Account
from leads.models import Lead
from leads.push.engine import leads_push
from tests.factories import API, make_account, rate_limiter_reset
from tests.leads.conftest import cache_metadata

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("#login-form [type=submit]")  # the theme's log-in button
    page.wait_for_url(f"{live_server.url}/admin/")


def answer_pushes(amocrm_mock) -> None:
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5001, "contact_id": 7001, "request_id": ["0"]}])
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})


def press(page, action: str) -> str:
    page.click(f'[data-action="{action}"]')
    page.wait_for_load_state()
    return page.locator("ul.messagelist").inner_text()


def test_the_account_page_chooses_by_name_sends_a_test_lead_and_pauses(live_server, admin_user, page, screenshot,
                                                                        amocrm_mock):
    account = make_account(name="Shop")
    rate_limiter_reset(account.pk)
    cache_metadata(account)
    change_url = f"{live_server.url}/admin/amocrm/account/{account.pk}/change/"
    log_in(page, live_server)

    # Defaults by name; won and lost stages are no choice for incoming leads.
    page.goto(change_url)
    stage_labels = page.locator("#id_default_status_id option").all_inner_texts()
    assert "Talks (1003)" in stage_labels and not any("(142)" in label for label in stage_labels)
    page.select_option("#id_default_pipeline_id", label="Partners (888)")
    page.select_option("#id_default_status_id", label="Partner request (2002)")
    page.select_option("#id_default_responsible_user_id", label="Boris (6)")
    page.select_option("#id_won_stages", label="Talks (1003)")
    screenshot(page, "1-defaults")
    page.click("[name=_continue]")
    page.wait_for_load_state()
    account.refresh_from_db()
    assert (account.default_pipeline_id, account.default_status_id, account.default_responsible_user_id) == (
        888, 2002, 6)
    assert account.won_stages == [[777, 1003]]
    assert page.locator("#id_default_responsible_user_id option:checked").inner_text() == "Boris (6)"

    # A test lead goes through the default source, the queue and the push.
    assert "Test lead created and queued" in press(page, "test_lead")
    answer_pushes(amocrm_mock)
    assert leads_push(account_id=account.pk).sent == 1
    page.goto(f"{live_server.url}/admin/leads/lead/")
    row = page.locator("#result_list tbody tr").first
    assert "Test lead" in row.inner_text() and "Sent" in row.inner_text()
    screenshot(page, "2-test-lead-sent")

    # Paused: the next lead waits, visibly; resumed: it goes.
    page.goto(change_url)
    assert "Sending paused" in press(page, "pause")
    assert page.locator('[data-action="resume"]').count() == 1
    screenshot(page, "3-paused")
    assert "it waits because sending is paused" in press(page, "test_lead")
    assert leads_push(account_id=account.pk).stopped == "paused"
    page.goto(f"{live_server.url}/admin/leads/lead/")
    waiting = page.locator("#result_list tbody tr").first.inner_text()
    assert "Pending" in waiting and "Paused: sending is paused for this account" in waiting
    screenshot(page, "4-lead-waits")

    page.goto(change_url)
    assert "Sending resumed" in press(page, "resume")
    assert Account.objects.get(pk=account.pk).sending_paused_at is None
    amocrm_mock.replace("POST", f"{API}/leads/complex",
                        json=[{"id": 5002, "contact_id": 7001, "request_id": ["0"]}])
    assert leads_push(account_id=account.pk).sent == 1
    assert set(Lead.objects.values_list("status", flat=True)) == {Lead.Status.SENT}
    page.goto(f"{live_server.url}/admin/leads/lead/")
    screenshot(page, "5-resumed-sent")
