# stockdb — the two commands:
#   make lab    a local lab host provisioned by site.yml (Docker engine, image and venv included)
#   make test   lint, unit tests, promtool rule tests, the production path and the Molecule scenarios
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PYTHON    ?= python3
BIN       := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

LAB       := tests/lab/lab.sh
TOOLS     := .cache/prometheus-tools/usr/bin
PROMTOOL  := $(TOOLS)/promtool
# Molecule scenarios, in order; scenarios joined by '+' run at the same time (tests/tools/molecule_scenarios.sh).
# `production` is the production path over ssh (tests/production/run.sh), run beside the scenarios that
# assert what happened rather than how fast.
SCENARIOS ?= default ops+cluster+production
# What `make test` runs after lint, the argument specs and the promtool tests: the same steps, and `unit`
# (`make unit`) beside ops, cluster and production - never beside `default`, whose drills measure trading rates.
TEST_STEPS ?= default ops+cluster+production+unit

.PHONY: help venv lab lab-converge lab-check lab-verify lab-down lab-status lab-cluster lab-cluster-verify lab-cluster-down erd test lint unit argspecs test-rules test-production molecule clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/ansible-playbook: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

venv: $(BIN)/ansible-playbook ## the Python environment (.venv) from requirements.txt

lab: venv ## create the lab host and provision it with site.yml, then print the URLs
	$(LAB) up
	$(BIN)/ansible-playbook -i inventory/lab site.yml
	@$(LAB) urls

lab-converge: venv ## run site.yml against the running lab host again
	$(BIN)/ansible-playbook -i inventory/lab site.yml

lab-check: venv ## site.yml in check mode against the lab host (what would change)
	$(BIN)/ansible-playbook -i inventory/lab site.yml --check --diff

lab-verify: venv ## run the behaviour tests against the lab host
	$(BIN)/pytest -p no:cacheprovider tests/integration --hosts=docker://stockdb-lab -o testpaths=tests/integration -k 'not test_ops'

lab-down: ## remove the lab host (the image stays cached; never installs Docker)
	$(LAB) down

lab-status: ## what of the lab exists
	$(LAB) status

CLUSTER := tests/lab/cluster.sh

lab-cluster: venv ## three database hosts and a monitoring host over ssh, with a vault, provisioned by site.yml
	$(CLUSTER) up
	$(BIN)/ansible-playbook $$($(CLUSTER) ansible-args) site.yml
	@$(CLUSTER) status

lab-cluster-verify: venv ## the replication tests on the cluster's database hosts, the dashboards' queries on its Prometheus
	ANSIBLE_VAULT_PASSWORD_FILE=$(CURDIR)/.secrets/cluster/vault-pass $(BIN)/pytest -p no:cacheprovider \
	  tests/integration/test_replication.py --hosts=ansible://mariadb --ansible-inventory=.secrets/cluster/inventory --force-ansible
	ANSIBLE_VAULT_PASSWORD_FILE=$(CURDIR)/.secrets/cluster/vault-pass $(BIN)/pytest -p no:cacheprovider \
	  tests/integration/test_stack.py -k panel_query --hosts=ansible://monitoring --ansible-inventory=.secrets/cluster/inventory --force-ansible

lab-cluster-down: ## remove the cluster's hosts and network (its inventory and vault stay in .secrets/cluster)
	$(CLUSTER) down

erd: venv ## regenerate docs/erd.md from the lab host's live schema
	$(BIN)/ansible-playbook -i inventory/lab playbooks/erd.yml

test: lint argspecs test-rules ## everything CI runs: lint, argument specs, promtool tests, then TEST_STEPS (Molecule, production path, unit tests)
	$(MAKE) molecule SCENARIOS='$(TEST_STEPS)'

lint: venv ## yamllint, ansible-lint (production profile), ruff
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --offline -q
	$(BIN)/ruff check .

unit: venv $(PROMTOOL) ## pytest unit tests, one worker per core
	PATH=$(CURDIR)/$(TOOLS):$$PATH $(BIN)/pytest -p no:cacheprovider -n auto tests/unit

argspecs: venv ## every role's meta/argument_specs.yml equals its defaults/main.yml
	$(BIN)/python tests/tools/check_argspecs.py roles

$(PROMTOOL):
	tests/tools/prometheus_tools.sh .cache/prometheus-tools

test-rules: $(PROMTOOL) ## promtool test rules for the alert rules
	$(PROMTOOL) check rules roles/prometheus/files/rules/*.yml
	$(PROMTOOL) test rules tests/promtool/*.test.yml

test-production: venv ## the production inventory as documented, vaulted, over ssh to a lab host
	$(LAB) image
	tests/production/run.sh

molecule: venv ## the Molecule scenarios and the production path ($(SCENARIOS)) on local systemd hosts
	$(LAB) image
	tests/tools/molecule_scenarios.sh $(SCENARIOS)

clean: lab-down ## remove the lab host, the venv and caches (keeps .secrets/)
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
