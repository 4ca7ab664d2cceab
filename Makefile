# The two commands of the README: `make run` and `make test`. Both create .venv and install first,
# exactly what uv.lock pins (versions and hashes): nothing is resolved again on install.
# `make lock` renews the lock to the newest versions that pyproject.toml's ranges allow.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# uv itself, at the version and hashes of tools/uv-requirements.txt, in a venv of its own.
UV_HOME := .uv
UV := $(UV_HOME)/bin/uv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml uv.lock | cksum | cut -d' ' -f1)
# Use the machine's Python, never one uv would download.
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test test-services lint lock bench schema clean

$(UV): tools/uv-requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (set PYTHON=python3.11)"; exit 1; }
	rm -rf $(UV_HOME)
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r tools/uv-requirements.txt
	touch $@

$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --quiet --python $(PYTHON)
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(PY) -m api serve --demo

lint: $(STAMP)
	$(VENV)/bin/ruff check api tests bench
	$(VENV)/bin/ruff format --check api tests bench
	$(VENV)/bin/mypy api
	$(PY) -m api export-schema --check

# On every core (at most four): most of the suite's time is spent waiting on server processes,
# browsers and sockets. A module's tests stay on one worker, which starts its servers once.
PARALLEL := -n auto --maxprocesses=4 --dist loadscope

test: lint
	$(VENV)/bin/pytest $(PARALLEL)

# CI's second pass: only the tests that need PostgreSQL or Redis (both URLs set).
test-services: $(STAMP)
	$(VENV)/bin/pytest $(PARALLEL) --services-only

lock: $(UV)
	$(UV) lock --upgrade --python $(PYTHON)

bench: $(STAMP)
	$(PY) -m bench

schema: $(STAMP)
	$(PY) -m api export-schema

clean:
	rm -rf $(VENV) $(UV_HOME) data .pytest_cache .mypy_cache .ruff_cache
