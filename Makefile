# Entry points for developers and CI. Every target installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/hack

.PHONY: venv tools cluster-up cluster-down lint test demo bench clean

venv: $(VENV)/.installed

# Every distribution at the version constraints.txt records (see hack/lock.sh).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --constraint constraints.txt -e '.[dev]'
	touch $@

# Builds (once, then cached) kube-apiserver, kube-controller-manager, kubectl,
# etcd and helm from the pinned modules under hack/tools/.
tools:
	@hack/tools/build.sh >/dev/null

cluster-up: venv tools
	@$(PY) -m testground.controlplane up

cluster-down: venv
	@$(PY) -m testground.controlplane down

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint tools
	$(VENV)/bin/pytest

demo: venv tools
	$(PY) hack/demo.py

# Figures (time to Ready, API and token requests, memory) for many EgainTokens.
bench: venv tools
	$(PY) hack/bench.py

clean:
	rm -rf $(VENV) .testground .pytest_cache .mypy_cache .ruff_cache
