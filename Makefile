# Two commands for a newcomer: `make up` runs the embedded pipeline, `make test` runs the tests.
# Both need only Python 3.11 and pip; they share the virtualenv in .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install up test test-all bench schemas clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ai]'
	touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/deltastream up

test: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-all: install
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

bench: install
	$(BIN)/python -m bench

schemas: install
	$(BIN)/deltastream schemas export

clean:
	rm -rf $(VENV) .deltastream .pytest_cache
