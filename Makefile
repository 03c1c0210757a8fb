# stc: the two commands of README.md, `make demo` and `make test`, each set up everything
# on a fresh machine (a virtual environment in .venv with pinned packages) and install
# nothing on a second run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stc-installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv test test-fast lint demo bench proto clean

venv: $(STAMP)

$(STAMP): requirements/lock.txt requirements/nodeps.txt pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements/lock.txt
	$(BIN)/pip install -q --no-deps --ignore-requires-python -r requirements/nodeps.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .

test: venv lint
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

demo: venv
	$(BIN)/python -m stc.demo

bench: venv
	$(BIN)/python -m benchmarks.run_all

proto: venv
	$(BIN)/python -m stc.proto.generate

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
