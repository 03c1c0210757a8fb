# stc: the two commands of README.md, `make demo` and `make test`, each set up everything
# on a fresh machine (a virtual environment in .venv with pinned packages) and install
# nothing on a second run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stc-installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv test test-fast lint demo bench proto clean gpu-wheels gpu-check

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

# -- the prepared GPU check (issue 11; benchmarks/gpu_check/README.md) ----------------------
# make gpu-wheels           on the CPU machine: cp312 manylinux wheels of what the H200 image
#                           lacks, into .whl/ (ignored by git), checked to stay under 50 MiB
# make gpu-check            on the GPU machine: install those wheels into $(GPU_SITE), stc with
#                           --no-deps (torch untouched), then the check, within 8 minutes
# make gpu-check DRY_RUN=1  every step at toy size on CPU (what CI runs)
WHL := .whl
GPU_PY ?= python3
GPU_SITE ?= /tmp/stc-site
DL_PY := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PY))
WHEEL_PLATFORMS := $(foreach n,2_17 2_24 2_27 2_28 2_31 2_34 2_35,--platform manylinux_$(n)_x86_64) \
	--platform manylinux2014_x86_64 --platform manylinux1_x86_64

gpu-wheels:
	$(DL_PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp $(WHEEL_PLATFORMS) -d $(WHL) -r benchmarks/gpu_check/wheels.txt
	@du -cb $(WHL)/*.whl | tail -1 | awk '{ if ($$1 > 50 * 1048576) { print "gpu-wheels: " \
		$$1 " bytes, over 50 MiB"; exit 1 } else print "gpu-wheels: " $$1 " bytes in $(WHL)/" }'

ifeq ($(DRY_RUN),1)
gpu-check: venv
	$(BIN)/python benchmarks/gpu_check/run.py --dry-run $(if $(OUT),--out $(OUT),)
else
gpu-check:
	$(GPU_PY) benchmarks/gpu_check/install_wheels.py --wheels $(WHL) --target $(GPU_SITE)
	$(GPU_PY) -m pip install -q --no-deps --no-build-isolation --no-index -e .
	PYTHONPATH=$(GPU_SITE) PYTHONUNBUFFERED=1 timeout 470 $(GPU_PY) \
		benchmarks/gpu_check/run.py --budget-s 420
endif

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
