# Developer and CI entry points. Two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench env clean

## env: create .venv and install featureline with the dev extra (again only when pyproject.toml changes)
env: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

## demo: the end-to-end example (generated data, late and corrected rows, time travel)
demo: $(STAMP)
	$(BIN)/python examples/drivers/demo.py

## lint: ruff (lint and format check) and mypy
lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

## test: lint, then the test suite (warnings are errors)
test: lint
	$(BIN)/pytest -q

## bench: the benchmarks (not tests)
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache examples/*/repo
