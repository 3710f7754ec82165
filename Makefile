# One command each: `make run` installs and runs the monitor on a SQLite file; `make test` installs and
# runs the whole test suite; `make bench` runs the benchmarks. Everything lives in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= test

.PHONY: run test bench lint clean

$(BIN)/monitor: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $(BIN)/monitor

run: $(BIN)/monitor
	$(BIN)/monitor run

# pywb (a real web archive the archive tests run on loopback) lives in its own virtualenv: its pins are not ours
$(VENV)/pywb/bin/wayback: | $(BIN)/monitor
	$(PYTHON) -m venv $(VENV)/pywb
	$(VENV)/pywb/bin/pip install --quiet 'pywb>=2.8,<3'

test: $(BIN)/monitor $(VENV)/pywb/bin/wayback
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: EXTRAS = test,bench
bench: $(BIN)/monitor
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(BIN)/monitor
	$(BIN)/ruff check monitor tests bench && $(BIN)/mypy && $(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
