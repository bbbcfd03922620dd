# `make run` runs the product on a laptop; `make test` runs the tests against PostgreSQL and Redis.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test e2e bench lint install messages sandbox clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "Python 3.11 is needed, $(PYTHON) is " + sys.version.split()[0] + ": run make PYTHON=/path/to/python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) requirements.txt requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# The Russian (and any other) catalogues compiled, so nobody has to remember: a .mo is rewritten only when
# its messages differ from its .po. Babel compiles (config/management/commands/compile_catalogues.py), so
# gettext's msgfmt is not needed.
messages: $(STAMP)
	@DEBUG=true ENV_FILE= $(PY) manage.py compile_catalogues --verbosity 0

install: $(STAMP) messages

run: install
	@DEBUG=$${DEBUG:-true} bin/run-dev

test: install
	@bin/ensure-chromium || echo "Going on without Chromium: the browser tests will fail with the same advice."
	$(PY) -m pytest $(PYTEST_ARGS)

e2e: install
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

bench: install
	$(PY) bench/run.py $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .

# The fake amoCRM; its redirect URI follows PORT (or SITE_URL) like `make run`; state kept in var/sandbox-state.json.
sandbox: install
	$(PY) -m amocrm_sandbox --port $${SANDBOX_PORT:-8765} $(SANDBOX_ARGS)

clean:
	rm -rf var staticfiles .pytest_cache
