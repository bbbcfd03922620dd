"""Fixtures for the sandbox's own tests: a sandbox on a hand-driven clock, API sessions, a webhook receiver."""

import pytest

from amocrm_sandbox import Sandbox, default_accounts
from amocrm_sandbox.control import SandboxControl

from .support import Api, ManualClock, Receiver


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def sandbox(clock):
    """Two accounts; limits out of the way (tests of the limits build their own sandbox)."""
    with Sandbox(accounts=default_accounts(2), clock=clock, rate_limit=10_000, block_threshold=10_000,
                 redirect_uri="http://127.0.0.1:9/callback/") as box:
        yield box


@pytest.fixture
def control(sandbox):
    return SandboxControl(sandbox.accounts[0].origin)


@pytest.fixture
def api(sandbox, control):
    """The first account, with a long-lived token."""
    return Api(sandbox.accounts[0].origin, control.long_lived_token())


@pytest.fixture
def second_api(sandbox, control):
    account = sandbox.accounts[1]
    return Api(account.origin, control.long_lived_token(account_id=account.account_id))


@pytest.fixture
def receiver():
    hook = Receiver()
    yield hook
    hook.close()
