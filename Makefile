# watch_queue: the ring patch series and the harness that proves it.
#   make vmtest   build the patched kernel, boot it, run every test inside
#   make test     everything CI runs: unit tests, lint, check-series, vmtest
PYTHON  ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
PROFILE ?= default
HARNESS  = $(VPY) -m harness --profile $(PROFILE)

.PHONY: all deps vmtest vmrun test unit lint check-series export-patches reset-source \
	bench clean help

all: help

help:
	@sed -n '2,4p' Makefile

$(VPY): requirements.txt
	$(PYTHON) -m harness deps

deps:
	$(PYTHON) -m harness deps

vmtest: $(VPY)
	$(HARNESS) vmtest

vmrun: $(VPY)
	$(HARNESS) vmrun --cmd "$(CMD)"

bench: $(VPY)
	$(HARNESS) bench

check-series: $(VPY)
	$(HARNESS) check-series

export-patches:
	$(PYTHON) -m harness export-patches

reset-source:
	$(PYTHON) -m harness reset-source

unit: $(VPY)
	$(VPY) -m pytest -q tests

lint: $(VPY)
	$(VPY) -m ruff check harness tests
	$(VPY) -m mypy harness tests

test: unit lint check-series vmtest

clean:
	rm -rf build/obj-* build/results build/logs
