# symbid developer targets. `make test` works on a fresh clone with only python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all install test unit integration lint e2e bench run clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check symbid tests bench
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

test: lint
	$(BIN)/python -m pytest -q tests/unit tests/integration

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .symbid build *.egg-info .pytest_cache .mypy_cache .ruff_cache
