"""A strict local amoCRM: fake accounts on local ports that reject what amoCRM rejects (docs/amocrm.md).

    from amocrm_sandbox import AccountConfig, Sandbox

    with Sandbox(accounts=[AccountConfig(account_id=31000001)]) as sandbox:
        origin = sandbox.accounts[0].origin    # e.g. http://127.0.0.1:40123
        ...

`amocrm_sandbox.control.SandboxControl(origin)` drives its control API; `manage.py amocrm_sandbox`
serves one from the command line.
"""

from .server import Sandbox
from .state import AccountConfig, Integration, default_accounts

__all__ = ["AccountConfig", "Integration", "Sandbox", "default_accounts"]
