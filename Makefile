# Two commands for a fresh Debian machine, as root: `make lab` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_HOME := $(CURDIR)/.cache/ansible
export ANSIBLE_LOCAL_TEMP := $(CURDIR)/.cache/ansible/tmp
## Every pytest run prints its slowest tests, so a CI log shows where the suite's time goes.
PYTEST_ARGS ?= --durations=12 --durations-min=5

.PHONY: help setup debs lab lab-up lab-down lab-report molecule test checks image lint lint-yaml-ansible lint-python sanity-quick sanity format unit integration integration-netns integration-guests guests guests-without-image bench clean

help:
	@echo "make lab       set everything up, then run the main job (lab converged and verified)"
	@echo "make test      every test and lint (two lanes: namespaces, and lab guests + molecule)"
	@echo "               LAB_BACKEND=qemu|uml forces the lab's guests (default auto)"
	@echo "make lab-down  remove the lab and every trace of it"
	@echo "make molecule  molecule test: the lab created, converged twice (idempotence), verified, destroyed"
	@echo "make bench     run the benchmarks"
	@echo "make sanity    every test of ansible-test sanity (pylint and pep8 too; make lint runs the others)"

## Setup: a virtualenv with the pinned Python packages, then the Debian packages of bindep.txt.
setup: $(VENV)/.installed debs

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV) 2>/dev/null || { apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; python3 -m venv $(VENV); }
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

debs: $(VENV)/.installed
	@missing="$$($(BIN)/bindep -b -f bindep.txt || true)"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## The main job: the lab up, converged by site.yml, proven by verify.yml, then the report.
## LAB_BACKEND: auto (QEMU, or User-mode Linux where its probe boot works), qemu or uml.
LAB_INVENTORY ?= inventories/lab
LAB_BACKEND ?= auto
export L3LAB_BACKEND := $(LAB_BACKEND)
REPORT_DIR ?= report

lab: setup lab-up
	ansible-playbook -i $(LAB_INVENTORY) playbooks/site.yml
	mkdir -p $(REPORT_DIR)
	ansible-playbook -i $(LAB_INVENTORY) playbooks/verify.yml -e verify_report_file=$(CURDIR)/$(REPORT_DIR)/verify.json \
	  || { $(MAKE) --no-print-directory lab-report; exit 1; }
	@$(MAKE) --no-print-directory lab-report

lab-up:
	ansible-playbook -i $(LAB_INVENTORY) playbooks/lab/create.yml

lab-report:
	/usr/bin/python3 playbooks/lab/files/report.py $(REPORT_DIR)/verify.json $(REPORT_DIR)

lab-down:
	ansible-playbook -i $(LAB_INVENTORY) playbooks/lab/destroy.yml

## The lab as a molecule scenario: create, converge, idempotence, verify, destroy.
molecule:
	molecule test

## Every test and lint, in two lanes side by side (their output kept apart): lint, the unit
## tests, then the integration tests on network namespaces; and the lab guests: the tests that need
## no root image (User-mode Linux, where it runs) and molecule while the QEMU image is built (or
## found in .cache/lab), then the tests on QEMU guests (beside the UML ones they took as long in all,
## and slowed the timing-sensitive failure matrix). Every test names what it creates with a
## prefix of its own (l3t...-, l3labt-, l3labq-, l3lf-, l3mol-), so the lanes never share a namespace or a file.
test: setup
	$(MAKE) --no-print-directory -j4 --output-sync=recurse checks guests

checks: lint unit
	$(MAKE) --no-print-directory integration-netns

image:
	python3 playbooks/lab/files/labctl.py image

## Lint in two lanes side by side: ruff (the one Python linter), yamllint and ansible-lint; and
## ansible-test sanity (validate-modules, ansible-doc, import, compile, yamllint, shellcheck, ...;
## tests/sanity/run.sh) without its pylint and pep8, which ruff stands in for here (pylint alone
## takes minutes on this machine); `make sanity` runs them all.
lint:
	$(MAKE) --no-print-directory -j2 --output-sync=target lint-yaml-ansible sanity-quick

lint-yaml-ansible: lint-python
	yamllint --strict .
	ansible-lint --strict

lint-python:
	ruff check .
	ruff format --check .

sanity-quick:
	PYTHON=$(BIN)/python tests/sanity/run.sh --skip-test pylint --skip-test pep8

## Every sanity test ansible-test has, with its ignores in tests/sanity/ignore-<ansible-core>.txt.
sanity:
	PYTHON=$(BIN)/python tests/sanity/run.sh

## ruff's fixes and its formatter over the Python; `make lint` checks both.
format:
	ruff check --fix .
	ruff format .

unit:
	pytest tests/unit $(PYTEST_ARGS)

integration:
	$(MAKE) --no-print-directory -j2 --output-sync=recurse integration-netns integration-guests

## Two pytest workers, a test file each at a time (--dist loadfile): a file's module-scoped fabric
## lives in one worker, and every file names its namespaces with a prefix of its own.
NETNS_WORKERS ?= 2
integration-netns:
	pytest tests/integration -m "not lab" -n $(NETNS_WORKERS) --dist loadfile $(PYTEST_ARGS)

integration-guests:
	pytest tests/integration -m lab $(PYTEST_ARGS)

guests:
	$(MAKE) --no-print-directory -j2 image guests-without-image
	pytest tests/integration -m "lab and qemu" $(PYTEST_ARGS)

## Where User-mode Linux runs, these need no image; elsewhere their guests wait for `make image`.
guests-without-image:
	pytest tests/integration -m "lab and not qemu" $(PYTEST_ARGS)
	molecule test

bench: setup
	python benchmarks/run.py $(BENCH)

clean:
	rm -rf .cache .pytest_cache .hypothesis .ruff_cache
