# One command each: `make run` installs the monitor (the package alone) and runs it on a SQLite file; `make test`
# installs it with the test extra and runs the whole test suite; `make bench` runs the benchmarks. Everything
# lives in .venv. Each target keeps its own stamp, so `make run` never installs the test toolchain and
# `make test` after `make run` still installs it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# the package alone (what `make run` needs)
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# the package with the test extra (pytest, playwright, ruff, mypy...)
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/monitor run

# pywb (a real web archive the archive tests run on loopback) lives in its own virtualenv: its pins are not ours
$(VENV)/pywb/bin/wayback: | $(BIN)/python
	$(PYTHON) -m venv $(VENV)/pywb
	$(VENV)/pywb/bin/pip install --quiet 'pywb>=2.8,<3'

test: $(VENV)/.installed-test $(VENV)/pywb/bin/wayback
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check monitor tests bench && $(BIN)/mypy && $(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
