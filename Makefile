# One command creates the environment and runs the tests: `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint bench bench-quick clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

serve: $(VENV)/.installed
	$(BIN)/oxen-server start

test: $(VENV)/.installed
	$(BIN)/ruff check oxen storage cli server tests bench
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check oxen storage cli server tests bench

bench: $(VENV)/.installed
	$(BIN)/python -m bench

bench-quick: $(VENV)/.installed
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV)
