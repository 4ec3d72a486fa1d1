# pgops.postgresql: `make demo` and `make test` do all set-up on a fresh Debian 12 machine (root).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(CURDIR)/$(VENV)/bin
COLL_LINK := .cache/collections/ansible_collections/pgops/postgresql
# ansible-test needs a real (not linked) path ending in ansible_collections/pgops/postgresql
ATEST_DIR := .cache/ansible-test/ansible_collections/pgops/postgresql
PG_MAJORS ?= 15 17
SCENARIOS ?= native container restore dr maintenance
# run on the first PostgreSQL major only (they do not depend on it); schedule installs cron and a venv in its
# container from Debian's mirror and PyPI, like scripts/build-image.sh
SCENARIOS_ONCE ?= schedule
# run on the last major only: pitr (pgBackRest on the container path) is tested on 15 by the functional tests
# (natively and in a container, pgBackRest 2.45); here with trixie's pgBackRest and PostgreSQL 17
SCENARIOS_LAST ?= pitr
export ANSIBLE_FORCE_COLOR ?= 0
export PATH := $(BIN):$(PATH)

.PHONY: help setup images demo test units functional browser bench bench-smoke sanity lint molecule clean

help:
	@echo "make demo   - throwaway postgres-pim container, a backup with playbooks/backup.yml, the backup list"
	@echo "make test   - unit + functional + browser tests, bench smoke run, ansible-lint, ansible-test sanity, Molecule"
	@echo "make bench  - the benchmark on a 1 GB database (BENCH_SIZE_MB, BENCH_RSS_SIZE_MB=4000 for the RSS check),"
	@echo "              then a fleet of BENCH_FLEET_SERVERS (8) containers backed up and drilled with forks 1 and N"

setup:
	@scripts/host-packages.sh
	@scripts/ensure-docker.sh
	@scripts/install-venv.sh $(VENV)
	@mkdir -p $(dir $(COLL_LINK)) && ln -sfn ../../../.. $(COLL_LINK)

images: setup
	@scripts/images.sh > .cache/images.txt && cat .cache/images.txt

demo: images
	@scripts/demo.sh

test: images units functional browser bench-smoke lint sanity molecule
	@echo "make test: all passed"

units: setup
	$(PY) -m pytest -q -p no:cacheprovider --rootdir=tests/unit tests/unit \
	  --import-mode=importlib -o pythonpath=.cache/collections

functional: setup
	$(PY) -m pytest -q -p no:cacheprovider --rootdir=tests/functional tests/functional

browser: setup
	@scripts/browser-packages.sh
	$(PY) -m pytest -q -p no:cacheprovider --rootdir=tests/browser tests/browser

bench: images
	$(PY) bench/run.py --size-mb $${BENCH_SIZE_MB:-1000} --rss-size-mb $${BENCH_RSS_SIZE_MB:-0} --json .cache/bench.json
	$(PY) bench/fleet.py --servers $${BENCH_FLEET_SERVERS:-8} --json .cache/bench-fleet.json

bench-smoke: setup
	$(PY) bench/run.py --size-mb 20 --quick

lint: setup
	@# ansible-lint installs a copy of the collection there once and does not refresh it: drop a stale one
	@rm -rf $(HOME)/.ansible/collections/ansible_collections/pgops/postgresql
	ansible-lint --offline

sanity: setup
	@rm -rf .cache/ansible-test && mkdir -p $(ATEST_DIR)
	@git ls-files -z --cached --others --exclude-standard | grep -zv '^\.cache/' | \
	  xargs -0 cp --parents -t $(ATEST_DIR)
	@# its own git repository, so that ansible-test lists these files and not the checkout's (.cache is ignored there)
	@cd $(ATEST_DIR) && git init -q && git add -A
	cd $(ATEST_DIR) && ansible-test sanity --venv --python 3.11 --color no
	@echo "ansible-doc renders every plugin and role:" && \
	  for m in plugins/modules/*.py; do ansible-doc pgops.postgresql.$$(basename $$m .py) >/dev/null; done && \
	  for r in roles/*/; do ansible-doc -t role pgops.postgresql.$$(basename $$r) >/dev/null; done && echo ok

molecule: images
	@set -e; for major in $(PG_MAJORS); do \
	  image=$$(awk -v m=$$major '$$1 == m {print $$2}' .cache/images.txt); \
	  for scenario in $(SCENARIOS); do \
	    echo "=== molecule $$scenario on PostgreSQL $$major ($$image)"; \
	    PGOPS_PG_MAJOR=$$major PGOPS_IMAGE=$$image PGOPS_PG_PORT=$$($(PY) scripts/free_port.py) \
	    PGOPS_DOCKER_CLI=$$(command -v docker) \
	      molecule test -s $$scenario || exit 1; \
	  done; \
	done; \
	major=$(firstword $(PG_MAJORS)); image=$$(awk -v m=$$major '$$1 == m {print $$2}' .cache/images.txt); \
	for scenario in $(SCENARIOS_ONCE); do \
	  echo "=== molecule $$scenario on PostgreSQL $$major ($$image)"; \
	  PGOPS_PG_MAJOR=$$major PGOPS_IMAGE=$$image PGOPS_PG_PORT=$$($(PY) scripts/free_port.py) \
	  PGOPS_DOCKER_CLI=$$(command -v docker) molecule test -s $$scenario || exit 1; \
	done; \
	major=$(lastword $(PG_MAJORS)); image=$$(awk -v m=$$major '$$1 == m {print $$2}' .cache/images.txt); \
	for scenario in $(SCENARIOS_LAST); do \
	  echo "=== molecule $$scenario on PostgreSQL $$major ($$image)"; \
	  PGOPS_PG_MAJOR=$$major PGOPS_IMAGE=$$image PGOPS_PG_PORT=$$($(PY) scripts/free_port.py) \
	  PGOPS_DOCKER_CLI=$$(command -v docker) molecule test -s $$scenario || exit 1; \
	done

clean:
	rm -rf .cache/ansible-test tests/output
