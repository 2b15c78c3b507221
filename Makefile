# snapdeploy: the commands of a developer's day. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
GOPATH_DEBIAN := /usr/share/gocode
VCSIM := build/vcsim
ASYNCAPI_CHECK := scripts/asyncapi

export AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
export DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/snapdeploy

.PHONY: help install services db browser test unit integration e2e chaos fuzz cluster-test lint asyncapi asyncapi-parser asyncapi-check samples vcsim bench demo up clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/python ## virtualenv with snapdeploy and its dev dependencies

services: ## start RabbitMQ and PostgreSQL if they are down, create the database
	@scripts/ensure-services

db: services

browser: ## headless Chromium and its chromedriver from Debian, for the console's browser tests
	@scripts/ensure-browser

test: install services vcsim browser asyncapi-parser ## every test: unit, integration (real broker + database), e2e
	$(BIN)/pytest -q

unit: install asyncapi-parser ## unit tests only (no network)
	$(BIN)/pytest -q tests/unit

integration: install services vcsim ## integration tests (real broker, database, simulator)
	$(BIN)/pytest -q tests/integration

e2e: install services vcsim browser ## end-to-end tests (every service as a process, the simulator)
	$(BIN)/pytest -q tests/e2e

ROUNDS ?= 50
SEED ?=
NODES ?= 3
KINDS ?=
chaos: install services vcsim ## seeded chaos run on its own 3-node RabbitMQ and PostgreSQL: ROUNDS=50 SEED=<random> NODES=3 KINDS=<all>; fails on any bad figure
	CHAOS_ROUNDS=$(ROUNDS) CHAOS_SEED=$(SEED) CHAOS_RABBIT_NODES=$(NODES) CHAOS_KINDS=$(KINDS) \
		$(BIN)/pytest -q -s -p no:logging tests/e2e/test_chaos.py

FUZZ_MESSAGES ?= 10000
FUZZ_SEED ?=
fuzz: install services vcsim ## contract fuzz: FUZZ_MESSAGES=10000 FUZZ_SEED=<random>; every one 431/DLQ, nothing changed
	FUZZ_MESSAGES=$(FUZZ_MESSAGES) FUZZ_SEED=$(FUZZ_SEED) $(BIN)/pytest -q -s -p no:logging tests/e2e/test_contract_fuzz.py

cluster-test: install services vcsim ## e2e on a real three-node RabbitMQ cluster (scripts/rabbit-cluster), one node killed mid-run
	SNAPDEPLOY_CLUSTER=1 $(BIN)/pytest -q tests/e2e/test_rabbit_cluster.py

lint: install ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

asyncapi: install ## regenerate contracts/asyncapi.yaml from the models and the topology
	$(BIN)/python -m contracts.asyncapi > contracts/asyncapi.yaml

asyncapi-parser: $(ASYNCAPI_CHECK)/node_modules/.package-lock.json

# The official AsyncAPI parser (@asyncapi/parser, pinned by the lock file) from the npm registry.
$(ASYNCAPI_CHECK)/node_modules/.package-lock.json: $(ASYNCAPI_CHECK)/package.json $(ASYNCAPI_CHECK)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: apt-get install nodejs npm"; exit 1; }
	cd $(ASYNCAPI_CHECK) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

asyncapi-check: asyncapi-parser ## check contracts/asyncapi.yaml with the official AsyncAPI parser
	node $(ASYNCAPI_CHECK)/validate.mjs contracts/asyncapi.yaml

samples: install ## write golden samples for message types that have none (never overwrites)
	$(BIN)/python -m contracts.samples

vcsim: $(VCSIM) ## build the vCenter simulator (tests/vcsim)

$(VCSIM): $(wildcard tests/vcsim/*.go) tests/vcsim/build.sh tests/vcsim/property_collector.patch
	@scripts/ensure-go
	mkdir -p build
	tests/vcsim/build.sh $(VCSIM) $(GOPATH_DEBIAN)

bench: install services vcsim ## benchmarks; each prints ratios against a baseline measured in the same run
	$(BIN)/python -m bench.bus_throughput
	$(BIN)/python -m bench.agent_concurrency
	$(BIN)/python -m bench.deploy_concurrency
	$(BIN)/python -m bench.audit_ingest
	$(BIN)/python -m bench.api_requests

demo: install services vcsim ## the whole stack, deployments from VM snapshots, the audit trail (exits 0 if all checks hold)
	$(BIN)/python -m scripts.demo

up: install services vcsim ## the same stack in the foreground until Ctrl-C
	$(BIN)/python -m scripts.demo --up

clean: ## remove the virtualenv and build output
	rm -rf $(VENV) build .pytest_cache .ruff_cache $(ASYNCAPI_CHECK)/node_modules
