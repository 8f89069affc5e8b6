# symbid developer targets. `make test` works on a fresh clone with only python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all install test unit integration js-test lint floors e2e bench run clean

all: test

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The JavaScript client (clients/js): its dev dependencies (TypeScript) come from npm ci
# with the committed package-lock.json, when node and npm are installed.
NODE := $(shell command -v node 2>/dev/null)
NPM  := $(shell command -v npm 2>/dev/null)
JS   := clients/js
JS_STAMP := $(JS)/node_modules/.installed
ifneq ($(and $(NODE),$(NPM)),)
JS_INSTALL := $(JS_STAMP)
endif

$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

install: $(STAMP) $(JS_INSTALL)

lint: $(STAMP)
	$(BIN)/ruff check symbid tests bench
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

# The JS client's tests (node --test) start daemons from .venv; skipped, saying so, when
# node (or npm, for its dev dependencies) is not installed.
define JS_TESTS
	@if [ -z "$(NODE)" ]; then echo "node is not installed: the JS client's tests are skipped"; \
	elif [ -z "$(NPM)" ]; then echo "npm is not installed: the JS client's tests are skipped"; \
	else cd $(JS) && node --test --test-reporter=spec test/*.test.js; fi
endef

js-test: $(STAMP) $(JS_INSTALL)
	$(JS_TESTS)

test: lint $(JS_INSTALL)
	$(BIN)/python -m pytest -q tests/unit tests/integration
	$(JS_TESTS)

# The unit and integration suites against Debian 12's versions of the dependencies (the
# floors the .deb relies on), in their own venv .venv-floors: tests/floors/run.
floors:
	PYTHON=$(PYTHON) tests/floors/run

# Slow end-to-end suites (a crash loop of the real daemon, the packages, a Debian 12
# container booted with systemd); .ci/run runs them after `make test`. As root, the tools
# they need are installed first (the packaging tools, systemd-nspawn and debootstrap).
E2E_TOOLS := systemd-container debootstrap
e2e: $(STAMP) packaging-tools
	@missing=$$(for p in $(E2E_TOOLS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi
	$(BIN)/python -m pytest -q -s tests/e2e

bench: $(STAMP)
	$(BIN)/python -m bench

# Run the daemon in the foreground with the example agents (Ctrl-C stops it).
# PORT=N serves the TCP API on 127.0.0.1:N instead of 8080.
PORT ?= 8080
run: $(STAMP)
	@mkdir -m 0700 -p .symbid
	@test -s .symbid/api-token || (umask 077 && $(BIN)/python -c \
		"import secrets; print(secrets.token_urlsafe(32))" > .symbid/api-token)
	@echo "symbid: state in .symbid/, agents from examples/agents/, API on .symbid/control.sock and http://127.0.0.1:$(PORT)/api/v1"
	@echo "  export SYMBI_SOCKET=.symbid/control.sock PATH=\"\$$PWD/.venv/bin:\$$PATH\"; symbi cron list"
	@echo "  curl -H \"Authorization: Bearer \$$(cat .symbid/api-token)\" http://127.0.0.1:$(PORT)/api/v1/health/scheduler"
	$(BIN)/symbid --config examples/dev.toml --listen 127.0.0.1:$(PORT)

# Packages and man pages (make deb, make rpm, make man): packaging/packaging.mk.
-include packaging/packaging.mk

clean:
	rm -rf $(VENV) .venv-floors .symbid .symbid-runs build *.egg-info .pytest_cache .mypy_cache .ruff_cache
	rm -rf $(JS)/node_modules
