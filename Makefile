# The shop's two commands: `make run` serves it, `make test` proves it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test image resilience soak bench profile cluster cluster-stop lint clean
N ?= 3

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.test-deps: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.run-deps

## run: install, migrate and serve the shop at http://127.0.0.1:$(PORT)
run: $(VENV)/.run-deps
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_shop --if-empty
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

## test: install, make sure PostgreSQL and Redis answer, run the whole suite
test: $(VENV)/.test-deps
	$(BIN)/python -m harness.servers.backing ensure
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## image: build the container image with podman (installs podman and runc when missing)
image: | $(BIN)/python
	$(BIN)/python -m harness.servers.image build

## resilience: the fault-injection suite alone (it is part of make test too)
resilience: $(VENV)/.test-deps
	$(BIN)/python -m harness.servers.backing ensure
	$(BIN)/python -m pytest -m resilience $(PYTEST_ARGS)

## cluster: N instances behind nginx round robin on the real PostgreSQL and Redis
cluster: $(VENV)/.test-deps
	$(BIN)/python -m harness.servers.backing ensure
	$(BIN)/python -m harness.servers.cluster start $(N)

cluster-stop: $(VENV)/.test-deps
	$(BIN)/python -m harness.servers.cluster stop

## soak: scripted shoppers for 20 minutes (SOAK_MINUTES), memory and connections at start and end (not in make test)
soak: $(VENV)/.test-deps
	$(BIN)/python -m harness.load.soak

## bench: load the shop with wrk and write BENCHMARKS.md (a benchmark, not a test)
bench: $(VENV)/.test-deps
	$(BIN)/python -m harness.load.bench

## profile: where a warm cart page spends its time (pyinstrument; after make bench)
profile: $(VENV)/.test-deps
	$(BIN)/python -m harness.load.profile

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .podman
