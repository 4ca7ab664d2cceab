# The two commands of the README: `make run` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint bench schema clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (set PYTHON=python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(PY) -m api serve --demo

lint: $(STAMP)
	$(VENV)/bin/ruff check api tests bench
	$(VENV)/bin/ruff format --check api tests bench
	$(VENV)/bin/mypy api
	$(PY) -m api export-schema --check

test: lint
	$(VENV)/bin/pytest

bench: $(STAMP)
	$(PY) -m bench

schema: $(STAMP)
	$(PY) -m api export-schema

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
