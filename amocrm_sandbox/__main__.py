"""`python -m amocrm_sandbox`: the sandbox without Django, with the same options as `manage.py amocrm_sandbox`."""

import sys

from .cli import main

sys.exit(main())
