# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create/refresh .venv and install what they need (system packages via
# apt-get when root and missing).

SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
SYSTEM_PACKAGES ?= mosquitto mosquitto_pub mosquitto_sub ffprobe socat chromium

.PHONY: venv system-deps test pytest lint demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# This machine's pip config names local mirrors that may be absent: drop that noise only.
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 \
	    | { grep -v "^WARNING: Location '.*' is ignored" || true; }; exit $${PIPESTATUS[0]}
	@touch $(STAMP)

system-deps:
	@scripts/ensure-system-deps.sh $(SYSTEM_PACKAGES)

lint: venv
	$(VENV)/bin/ruff check nvrshare tests bench
	$(VENV)/bin/ruff format --check nvrshare/protocol tests/protocol
	$(VENV)/bin/mypy nvrshare/protocol
	$(VENV)/bin/lint-imports

# tests/protocol with the coverage bar, then the rest; a few failures of the rest
# get one re-run and print as FLAKY when they all pass there. Exit 5 fails.
pytest: venv system-deps
	@PY=$(PY) scripts/run-pytest.sh $(PYTEST_ARGS)

test: lint pytest

demo: venv system-deps
	$(PY) -m nvrshare demo

bench: venv system-deps
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
