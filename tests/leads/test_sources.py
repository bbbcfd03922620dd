"""The default lead source: created when an account connects, once, and printed by `amocrm_connect --json`."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from amocrm.models import Account
from amocrm.services import account_connected
from leads import sources
from leads.models import LeadSource
from tests.amocrm.test_oauth import TOKEN_ANSWER, mock_metadata
from tests.leads.conftest import TOKEN_URL

pytestmark = pytest.mark.django_db


def test_connecting_through_the_cli_creates_the_default_source_and_prints_its_key(amocrm_mock):
    args = ["--host", "sandbox.test", "--client-id", "cid", "--client-secret", "cs",
            "--redirect-uri", "https://site/amocrm/oauth/callback/", "--json"]
    for code in ("c1", "c2"):  # connecting again keeps the one default source
        amocrm_mock.post(TOKEN_URL, json=TOKEN_ANSWER)
        mock_metadata(amocrm_mock)
        out = StringIO()
        call_command("amocrm_connect", *args, "--code", code, stdout=out)
    account = Account.objects.get()
    source = LeadSource.objects.get(account=account)
    assert (source.name, source.mode, source.is_default, source.is_active) == ("Website", "deal", True, True)
    assert json.loads(out.getvalue())["lead_source_key"] == source.public_key


@pytest.mark.usefixtures("account_with_metadata")
def test_the_default_source_is_created_once_per_account_even_when_asked_twice(account):
    first = sources.lead_source_ensure_default(account=account)
    account_connected.send(sender=Account, account=account)
    assert sources.lead_source_ensure_default(account=account) == first
    assert LeadSource.objects.filter(account=account, is_default=True).count() == 1


@pytest.mark.usefixtures("account_with_metadata")
def test_the_database_refuses_a_second_default_source(account):
    from django.db import IntegrityError, transaction

    sources.lead_source_ensure_default(account=account)
    with pytest.raises(IntegrityError), transaction.atomic():
        LeadSource.objects.create(account=account, name="Another", is_default=True)
