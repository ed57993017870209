# Two commands matter: `make run` starts the whole service, `make test` tests it.
# Both bootstrap the locked virtual environment themselves.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
BUF_VERSION := 1.75.0
BUF := $(TOOLS)/node_modules/.bin/buf
VENV := .venv
BIN := $(VENV)/bin
PROTO_SRC := $(wildcard proto/aftercare/*/*.proto)
PROTO_STAMP := proto/.generated
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test test-long lint gen install clean demo bench bench-latency bench-idle chaos histories chromium nginx prometheus screenshots dashboard-screenshots report-screenshots ops-scale messages bus-kill

run: install
	$(BIN)/aftercare run

demo: install
	$(BIN)/aftercare demo

test: install lint chromium nginx prometheus
	$(BIN)/pytest

lint: install $(BUF)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	cd proto && $(abspath $(BUF)) lint

# buf (the protobuf linter) from the npm registry, at a fixed version.
$(BUF):
	npm install --silent --no-save --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

install: $(VENV)/.synced $(PROTO_STAMP)

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(TOOLS) uv==$(UV_VERSION)

# Re-sync whenever the lock or the project metadata changes.
$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

# Generated protobuf/gRPC code is a build product: never edited, never committed.
$(PROTO_STAMP): $(PROTO_SRC) $(VENV)/.synced
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=proto --grpc_python_out=proto \
		--mypy_out=proto --mypy_grpc_out=proto $(PROTO_SRC)
	touch $@

gen: $(PROTO_STAMP)

clean:
	rm -rf $(VENV) $(TOOLS) $(PROTO_STAMP) proto/aftercare/v1/*_pb2*.py* .mypy_cache .pytest_cache .ruff_cache

# Latency, throughput, cost per journey and the send path, beside bare Temporal
# measured in the same run -> table on stdout and .aftercare/bench.json.
bench: install
	$(BIN)/python -m tools.bench

# StartJourney -> confirmation email latency against bare Temporal (issue 2's figure).
bench-latency: install
	$(BIN)/python -m tools.bench.latency --runs 300 --json .aftercare/bench-latency.json

# 20,000 sleeping journeys: start rate, worker and server memory, then a wake storm
# of 5,000 timers due at one instant (issue 6's idle capacity) -> .aftercare/bench-idle.json.
# BENCH_IDLE_FLAGS=--large for 100,000.
bench-idle: install
	$(BIN)/python -m tools.bench.idle $(BENCH_IDLE_FLAGS)

# Every chaos scenario with 500 journeys in flight: what was injected, what was
# checked (journeys, ledger, mail sink, Twilio fake); non-zero exit on any failure.
chaos: install
	$(BIN)/python -m tools.chaos --journeys 500

# Issue 18's pause test at its full size: 1,000 sleeping journeys, step cross_sell
# paused, timers fired in virtual time, nothing sent, resumed, each sent once
# (about two minutes; `make test` runs it with 100).
ops-scale: install
	AFTERCARE_PAUSE_JOURNEYS=1000 $(BIN)/pytest -n0 \
		tests/engine/journeys/operations/test_pause_at_scale.py

# The benchmark tools run end to end at a tiny scale (tests marked `long`): a few
# minutes, mostly waiting for minute-aligned wake storms, so outside make test.
test-long: install
	$(BIN)/pytest -m long

# `aftercare consume` SIGKILLed in the middle of 200 orders and their events on the
# real RabbitMQ, then restarted: each journey started once, each event applied once
# (`make test` runs it with 20).
bus-kill: install
	AFTERCARE_BUS_KILL_ORDERS=200 $(BIN)/pytest -n0 \
		tests/engine/integrations/test_bus_consumer_kill.py

# The customer-facing texts' gettext catalogs (engine/customers/locales): extract the
# template from the sources (babel.cfg) and merge it into every language's catalog;
# then translate what is new (docs/localisation.md). make test checks they agree.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --sort-output \
		--project=Aftercare --copyright-holder="Aftercare contributors" \
		-o engine/customers/locales/messages.pot .
	$(BIN)/pybabel update -i engine/customers/locales/messages.pot \
		-d engine/customers/locales --ignore-obsolete

# Record a history for every journey path that has none (tests/histories/*.json) for
# the replay tests; FORCE="name ..." records those paths again.
histories: install
	$(BIN)/python -m tests.histories.record $(if $(FORCE),--force $(FORCE))

# Headless Chromium (Debian's package) for the email screenshots and their test.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Debian's nginx: the TLS tests put it in front of the Temporal dev server as a
# TLS-terminating gRPC proxy (mutual TLS, API keys). Debian installs it in /usr/sbin,
# which a non-root PATH may lack.
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq nginx >/dev/null; }

# Debian's Prometheus (prometheus and promtool in /usr/bin): `make test` checks the
# alert rules with promtool and scrapes the running stack with a real Prometheus.
prometheus:
	@command -v promtool >/dev/null 2>&1 || [ -x /usr/bin/promtool ] || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq prometheus >/dev/null; }

# The order confirmation (en, de) at 375 and 1200 px -> .aftercare/screenshots/*.png
screenshots: install chromium
	$(BIN)/python -m tools.screenshots

# The dashboard's key panels drawn by a real Prometheus from a running stack with
# traffic (about two minutes) -> docs/images/dashboard-*.png for docs/operations.md.
dashboard-screenshots: install chromium prometheus
	$(BIN)/python -m tools.dashboard_screenshots --out docs/images

# The plan report page for docs/reports.md: after `aftercare demo` on a fresh dev
# stack (a few minutes; REPORT_DATABASE=<url> reports that database instead) at
# 1280 and 390 px -> docs/images/report-{desktop,phone}.png, and a month of
# generated traffic at 1280 px -> docs/images/report-sample-desktop.png.
report-screenshots: install chromium
	$(BIN)/python -m tools.report_screenshots --out docs/images --since 1d $(if $(REPORT_DATABASE),--database-url $(REPORT_DATABASE),--demo)
	$(BIN)/python -m tools.report_screenshots --out docs/images --name report-sample --only desktop
