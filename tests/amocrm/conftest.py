"""Fixtures for amoCRM tests: the mocked host and a connected account."""

import pytest
import responses

from amocrm.ratelimit import AccountRateLimiter
from tests.factories import HOST, make_account


@pytest.fixture
def mocked():
    """Every HTTP call must be registered; an unexpected one fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def account(db):
    acc = make_account()
    AccountRateLimiter(acc.pk).reset()
    return acc


API = HOST + "/api/v4"
TOKEN_URL = HOST + "/oauth2/access_token"
