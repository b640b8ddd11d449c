# Entry points for developers and CI. Every target installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/hack

.PHONY: venv tools image publish cluster-up cluster-down lint test demo bench bench-propagation soak clean

venv: $(VENV)/.installed

# Every distribution at the version constraints.txt records (see hack/lock.sh).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --constraint constraints.txt -e '.[dev]'
	touch $@

# Builds (once, then cached) kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kubectl, etcd, helm and promtool from the pinned
# modules under hack/tools/.
tools:
	@hack/tools/build.sh >/dev/null

# Builds (once per change of its inputs, then cached) the operator image from
# the Dockerfile with buildah, on a Debian base made by mmdebstrap: no Docker
# engine. Writes dist/egain-token-operator-<tag>.oci.tar; the last line printed
# is the image reference (see docs/development.md).
image:
	@hack/image/build.sh

# Pushes the image and the chart (as an OCI artifact) to REGISTRY, e.g.
# registry.example.com/platform, both at pyproject.toml's version, with the
# credentials docker and helm share; prints the image digest (docs/helm.md).
publish: tools
	@hack/publish.sh "$(REGISTRY)"

cluster-up: venv tools
	@$(PY) -m testground.controlplane up

cluster-down: venv
	@$(PY) -m testground.controlplane down

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint tools
	$(VENV)/bin/pytest

demo: venv tools
	$(PY) hack/demo.py

# Every row of docs/benchmarks.md at TOKENS EgainTokens: one table, and bench.json;
# PROFILE=1 samples each burst's operator with py-spy (docs/benchmarks.md).
TOKENS ?= 5000
bench: venv tools
	$(PY) hack/bench.py --tokens $(TOKENS) $(if $(PROFILE),--profile)

# How long a refreshed token takes to reach a Pod's mounted file, at the
# kubelet's sync period SYNC (default 1m, the kubelet's own default).
SYNC ?= 1m
bench-propagation: venv tools
	$(PY) hack/propagation.py --sync-frequency $(SYNC)

# Short-lived EgainTokens under random eGain and Kubernetes faults for DURATION
# seconds (default 600; 1800 for the leak check), with LIFETIMES=lead (60-120 s
# tokens, judged through the faults their refresh lead covers; the default) or
# stress (5-10 s); prints the figures, writes soak.json, and fails on any
# expired token read while nothing excused it, a fault no request met, a stall,
# an incomplete recovery or a judged share below the variant's minimum (see
# docs/reliability.md). The code: hack/soak/ (run as `python -m soak`).
DURATION ?= 600
LIFETIMES ?= lead
soak: venv tools
	$(PY) -m soak --duration $(DURATION) --lifetimes $(LIFETIMES)

clean:
	rm -rf $(VENV) .venv-checkov .testground dist .pytest_cache .mypy_cache .ruff_cache
