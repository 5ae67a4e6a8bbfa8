# One command creates the environment and runs the tests: `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint bench bench-quick clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

test: $(VENV)/.installed
	$(BIN)/ruff check oxen storage cli tests
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check oxen storage cli tests bench

clean:
	rm -rf $(VENV)
