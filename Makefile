# Two commands: `make demo` (the main job) and `make test` (the whole suite); `make mutation`
# is the slow mutation check of the core modules (docs/mutation.md), run by hand, not in CI.
# Both create .venv when missing. Torch: an importable torch (the user's own, seen through
# --system-site-packages) is kept; otherwise the CPU build torch==2.13.0 is installed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fcnseg-installed
DEMO_OUT ?= demo-out

.PHONY: setup demo test lint mutation clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fcnseg demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q

mutation: $(STAMP)
	$(PY) -c "import mutmut" 2>/dev/null || $(PY) -m pip install -e ".[mutation]"
	$(PY) tools/mutation.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(VENV)/bin/ruff format --check src tests benchmarks tools

clean:
	rm -rf $(VENV) $(DEMO_OUT) mutants
