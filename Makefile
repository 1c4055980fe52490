# onebit: `make demo` and `make test` work on a fresh machine (they create .venv first).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# CPU build of torch, pinned: an unpinned torch pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
BUILD_DEPS := "scikit-build-core>=0.10" "nanobind>=2.4" "cmake>=3.18" ninja
NATIVE_SOURCES := $(shell find csrc -name '*.cc' -o -name '*.h') CMakeLists.txt pyproject.toml

.PHONY: install demo test test-fast bench clean help

help:
	@echo "make demo    train a small binary CNN on CIFAR-10 end to end"
	@echo "make test    run the test suite (every ISA this CPU supports)"
	@echo "make bench   run benchmarks/ and write benchmarks/results/*.json"
	@echo "make install create .venv, install torch ($(TORCH)) and onebit (editable) with dev extras"

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	touch $@

$(VENV)/.deps: $(VENV)/.created pyproject.toml
	$(PIP) install --quiet $(TORCH) $(BUILD_DEPS)
	touch $@

# Editable install (Python edits take effect at once); re-run when native sources change.
$(VENV)/.built: $(VENV)/.deps $(NATIVE_SOURCES)
	$(PIP) install --quiet --no-build-isolation -e ".[dev]"
	touch $@

install: $(VENV)/.built

demo: install
	$(VENV)/bin/onebit info
	$(VENV)/bin/onebit demo

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -x -m "not slow"

bench: install
	@ls benchmarks/*.py >/dev/null 2>&1 && for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done \
	  || echo "no benchmarks yet"

clean:
	rm -rf build $(VENV) .pytest_cache
