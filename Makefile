# watch_queue: the ring patch series and the harness that proves it.
#   make vmtest   build the patched kernel, boot it, run every test inside
#   make test     everything CI runs: unit tests, lint, check-series, vmtest in both profiles
#
# Targets (PROFILE=default|debug for the kernel ones):
#   vmtest [T=GLOB] [PLANT=leak]  the whole pipeline; T='ring_test.*loss*' runs only the
#                                 matching programs/tests; PLANT=leak loads a leaking module
#   vmrun CMD='...'    run one shell command in the last built test kernel
#   vmshell            an interactive shell in the test kernel, tests and checkers on PATH
#   bench              the benchmarks (selftests/bench) in the test kernel
#   check-series       checkpatch, Debian's files, uapi header tests, man pages, sparse,
#                      selftests in the series, cover letter, every prefix builds
#   unit, lint         host unit tests; ruff and mypy --strict
#   deps               Debian packages (as root) and the pinned venv
#   export-patches     write build/src's series back to patches/
#   reset-source       drop build/src's series; the next run applies patches/
#   parse [RESULTS=dir]  re-read a results folder and print its verdict
#   clean              remove the kernel objects and results (keeps build/src)
PYTHON  ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.deps-stamp
PROFILE ?= default
HARNESS  = $(VPY) -m harness

.PHONY: all deps vmtest vmrun vmshell test unit lint check-series export-patches \
	reset-source bench parse clean help

all: help

help:
	@sed -n '2,/^PYTHON/p' Makefile | sed '$$d' | sed 's/^# \{0,1\}//'

# The venv is up to date when its stamp is newer than requirements.txt (.venv/bin/python
# is a symlink whose own mtime says nothing); harness deps writes the stamp.
$(STAMP): requirements.txt
	$(PYTHON) -m harness deps
	touch $@

deps:
	$(PYTHON) -m harness deps
	touch $(STAMP)

vmtest: $(STAMP)
	$(HARNESS) vmtest --profile $(PROFILE) $(if $(T),-T '$(T)') $(if $(PLANT),--plant $(PLANT))

vmrun: $(STAMP)
	$(HARNESS) vmrun --profile $(PROFILE) --cmd "$(CMD)"

vmshell: $(STAMP)
	$(HARNESS) vmshell --profile $(PROFILE)

bench: $(STAMP)
	$(HARNESS) bench --profile $(PROFILE)

parse: $(STAMP)
	$(HARNESS) parse $(if $(RESULTS),--results '$(RESULTS)')

check-series: $(STAMP)
	$(HARNESS) check-series --profile $(PROFILE)

export-patches:
	$(PYTHON) -m harness export-patches

reset-source:
	$(PYTHON) -m harness reset-source

unit: $(STAMP)
	$(VPY) -m pytest -q tests

lint: $(STAMP)
	$(VPY) -m ruff check harness tests
	$(VPY) -m mypy harness tests

# Both profiles: the lessons that need KASAN, lockdep or kmemleak run in CI too.
test: unit lint check-series
	$(MAKE) vmtest PROFILE=default
	$(MAKE) vmtest PROFILE=debug

clean:
	rm -rf build/obj-* build/results build/logs
