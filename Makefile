# One entry point for people and CI. `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
SCENARIO ?=
SCENARIOS := $(sort $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
# podman needs the runc runtime and ulimits it may set here (see molecule/containers.conf).
export CONTAINERS_CONF := $(CURDIR)/molecule/containers.conf
# Processes per node for `make train`: one per GPU, or 2 CPU processes where there is none.
NPROC ?= $(shell n=$$(nvidia-smi -L 2>/dev/null | grep -c '^GPU'); [ "$${n:-0}" -gt 0 ] && echo $$n || echo 2)

.PHONY: help  ## Show this list of targets
help:
	@echo "Targets (make TARGET):"
	@sed -nE 's/^\.PHONY: ([a-z-]+) +## (.*)/  \1|\2/p' $(MAKEFILE_LIST) | column -t -s '|'

# The stamp is newer than pyproject.toml once everything is installed, so a second
# `make venv` does nothing (and never reinstalls the 5 GB torch build).
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
	@touch $@

.PHONY: venv  ## Create .venv with the project and every tool (does nothing when up to date)
venv: $(STAMP)

.PHONY: system-deps  ## Install podman, runc, debootstrap, graphviz with apt-get when missing
system-deps:
	@tools/ensure-system-deps.sh

.PHONY: disk-check  ## Fail early when make test would run out of disk space (CHECK_DISK=0 skips)
disk-check: system-deps
	@tools/check-disk.sh

.PHONY: node-image  ## Build the local systemd container image for molecule (cached)
node-image: system-deps
	@tools/build-node-image.sh

.PHONY: images  ## Build the molecule scenarios' images and the wheelhouse (cached)
images: venv node-image
	@tools/build-torch-image.sh

.PHONY: train  ## Run the default DDP training job on this node (ARGS="--epochs 3 ...")
# TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1: a restarted worker group must not read the previous
# group's addresses from torchrun's shared store (pytorch/pytorch#135712).
train: venv
	TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 $(VENV)/bin/torchrun --standalone --nnodes=1 \
	  --nproc-per-node=$(NPROC) -m training $(ARGS)

.PHONY: test  ## Run every test: lint, Python tests (real torchrun), all molecule scenarios
# The scenarios' images (minutes of I/O on a fresh machine) build while pytest runs; each
# part's output is shown whole when it ends.
test: system-deps disk-check venv
	$(MAKE) lint
	$(MAKE) -j2 --output-sync=target pytest images
	$(MAKE) molecule-all

.PHONY: pytest  ## Run the Python tests only (PYTEST_ARGS="-k tree" narrows them)
pytest: venv
	$(VENV)/bin/pytest $(PYTEST_ARGS)

.PHONY: lint  ## Check Python (ruff) and YAML/Ansible (yamllint, ansible-lint)
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/yamllint --strict .
	@if [ -f site.yml ]; then PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/ansible-lint; fi

.PHONY: format  ## Apply ruff's fixes and formatting
format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: molecule  ## Run one molecule scenario: make molecule SCENARIO=name
molecule: venv node-image
	@if [ -z "$(SCENARIO)" ]; then \
	  echo "make molecule: set SCENARIO to one of: $(or $(SCENARIOS),(no scenario exists yet))"; exit 2; fi
	@mkdir -p .cache/logs
	set -o pipefail; PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/molecule test -s $(SCENARIO) \
	  2>&1 | tee .cache/logs/molecule-$(SCENARIO).log \
	  || { tools/molecule-failures.sh .cache/logs/molecule-$(SCENARIO).log; exit 2; }

.PHONY: molecule-all  ## Run every molecule scenario in turn
# One at a time: running torchrun beside nvidia_driver took 22 min 46 s, as long as the two in
# turn (the 2 cores are the limit), so nothing is gained by running them together.
molecule-all: venv
	@if [ -z "$(SCENARIOS)" ]; then echo "molecule: no scenario exists yet"; fi
	@set -e; for s in $(SCENARIOS); do $(MAKE) molecule SCENARIO=$$s; done

.PHONY: bench  ## Run the benchmarks; each prints its numbers and ratios
bench: venv
	@set -e; for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f; done

.PHONY: bench-train  ## Time the seed's training recipe against the default one, end to end
bench-train: venv
	$(PY) benchmarks/bench_train.py

.PHONY: clean  ## Remove caches and outputs (keeps .venv and the container image)
clean:
	rm -rf .pytest_cache .ruff_cache outputs runs build dist *.egg-info
