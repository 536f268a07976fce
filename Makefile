# `make demo`: set up everything, then serve the quickstart example.
# `make test`: set up everything, then run the whole suite (lint and type checks included).
# `make check`: the tests that need no model, engine or VM, in under 2 minutes.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

.PHONY: setup demo test check lint clean arm64-wheel test-arm64 bench-compare
setup: $(STAMP)

$(STAMP): pyproject.toml requirements-dev.txt constraints.txt scripts/setup.sh scripts/llama-wheel.sh scripts/llama-patches.sh
	VENV=$(VENV) scripts/setup.sh
	touch $@

demo: setup
	VENV=$(VENV) scripts/demo.sh

test: setup
	$(PY) -m pytest

# The fast tier, under 2 minutes: what needs no model, container engine or VM (pyproject.toml's markers),
# on every core (pytest-xdist): these tests share no session state. `make test` stays one process, since its
# engine and VM tests share session fixtures (Podman, the registry, built images).
check: setup
	$(PY) -m pytest -n auto -m "not model and not engine and not vm and not slow"

# arm64 device images, built and booted under emulation: too slow for CI's budget, run before a release.
test-arm64: setup
	scripts/setup-arm64.sh
	CORTEX_TEST_ARM64=1 $(PY) -m pytest -m arm64

# The llama-cpp-python wheel for arm64 bundles and disk images (`--platform linux/arm64`): cross-compiled
# on an x86_64 host, once, into the same cache as the host's wheel. Not part of setup: ~10 minutes cold on 2 cores.
arm64-wheel: setup
	PYTHON=$(PY) scripts/llama-wheel.sh --arch arm64

# Serving throughput at 1, 2, 4 and 8 streams: cortex start, native llama-server (built once from the sources
# vendored in the pinned llama-cpp-python, ~15 minutes cold on 2 cores) and llama-cpp-python's own server.
BENCH_VENV ?= $(HOME)/.cache/cortex/bench-venv
bench-compare: setup
	scripts/llama-server.sh >/dev/null
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q "$$(ls $$(PYTHON=$(PY) scripts/llama-wheel.sh)/llama_cpp_python-*.whl)[server]"
	$(PY) bench/compare.py --llama-cpp-python $(BENCH_VENV)/bin/python

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) scripts/typecheck.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
