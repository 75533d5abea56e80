# Packets in a Kubernetes cluster: build the book, run every check.
#
#   make book       install into .venv and build the HTML book into _build/html (REPO_URL=... for buttons)
#   make serve      serve the built book on http://127.0.0.1:8000/ ("Edit and run" needs it; PORT=...)
#   make test       install what the checks need (pip and apt) and run them all
#   make lab        run the notebooks live in JupyterLab
#   make notebooks  sync each .ipynb from its .md and re-execute it (refreshes the stored outputs)
#   make bench      measure netsim against its performance targets (BENCH_ARGS=--skip-book, --baseline REV ...)
#   make lock       regenerate requirements/constraints.txt and environment.yml
#
# Every pip install goes through requirements/constraints.txt, so a build next month
# resolves the same versions. Nothing downloads once installed: book build and tests
# run from the stored notebook outputs and local assets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
PYTEST      := $(PY) -m pytest
CONSTRAINTS := requirements/constraints.txt
EXTRAS      := book,test,lab
STAMP       := $(VENV)/.installed
BUILD_DIR   := _build
HTML_DIR    := $(BUILD_DIR)/html

# Kernels started by nbval and by `make notebooks` inherit these: the same hash seed on
# every run, and no debugger chatter about frozen modules.
export PYTHONHASHSEED := 0
export PYDEVD_DISABLE_FILE_VALIDATION := 1

# Debian packages the tests use: the browser for the page checks, and the tools that
# compare the emulator with a real kernel in network namespaces.
APT_PACKAGES := chromium iproute2 iptables tcpdump tshark conntrack iputils-ping fonts-dejavu-core nftables containernetworking-plugins bind9-dnsutils traceroute nginx-light curl nfacct netcat-openbsd
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# The repository the book's Binder launch, repository and issue buttons point at, e.g.
# `make book REPO_URL=https://github.com/you/packets-in-kubernetes` (REPO_BRANCH, default
# main). Unset, the book has none of those buttons. tools/repo_url.py writes the build's
# config (book/_config.yml plus the repository) into the build folder; it is never committed.
REPO_URL    ?=
REPO_BRANCH ?= main
export REPO_URL REPO_BRANCH
BOOK_CONFIG := $(BUILD_DIR)/config/_config.yml

JB_BUILD := $(VENV)/bin/jupyter-book build -W -n --keep-going \
            --config $(BOOK_CONFIG) --toc book/_toc.yml .

# "Edit and run" runs the chapters' code in the reader's browser with Pyodide, served from the
# book's own files (issue #23). Its core comes from the npm package at this version, the tarball
# checked by its sha256 (`npm pack` fetches it once into .cache/); scapy's wheel, at the version
# of the constraints, comes from pip's index the same way. tools/pyodide_runtime.py copies both
# into the built book beside a wheel of netsim built from the working tree. Nothing of it is
# committed. To move to another Pyodide: change both lines (`npm pack pyodide@X` and sha256sum).
PYODIDE_VERSION := 0.29.5
PYODIDE_SHA256  := 6749b10ee515a1458ecea36d860c8ce2a48366e85b3f92d749ad1840e4aff181
CACHE_DIR       := .cache
PYODIDE_DIR     := $(CACHE_DIR)/pyodide-$(PYODIDE_VERSION)
PYODIDE_STAMP   := $(PYODIDE_DIR)/.checked
SCAPY_VERSION   := $(shell sed -n 's/^scapy==//p' $(CONSTRAINTS))
SCAPY_WHEEL     := $(CACHE_DIR)/wheels/scapy-$(SCAPY_VERSION)-py3-none-any.whl
PORT            ?= 8000

.PHONY: help book html serve pyodide test test-unit test-notebooks test-browser system-packages \
        lab notebooks bench lock clean distclean

help:
	@sed -n 's/^#   make /  make /p' $(MAKEFILE_LIST)

# ---------------------------------------------------------------- environment
# Reinstalled only when pyproject.toml or the constraints change.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	@touch $@

system-packages:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

# ---------------------------------------------------------------- the book
# A clean build every time: Sphinx builds are incremental and would not repeat the
# warnings of unchanged pages. -W turns every warning into a failure. The in-page runtime
# (Pyodide, netsim's and scapy's wheels) goes into _build/html/_static/pyodide afterwards.
html: $(STAMP) $(PYODIDE_STAMP) $(SCAPY_WHEEL)
	rm -rf $(BUILD_DIR)
	$(PY) tools/repo_url.py --out $(BOOK_CONFIG)
	$(JB_BUILD)
	$(PY) tools/pyodide_runtime.py --pyodide $(PYODIDE_DIR) --scapy $(SCAPY_WHEEL) --out $(HTML_DIR)/_static/pyodide

book: html
	@echo
	@echo "The book is built. Open file://$(CURDIR)/$(HTML_DIR)/index.html in a browser,"
	@echo "or run 'make serve' and open http://127.0.0.1:$(PORT)/ to run its code in the page."

# The built book on the loopback address only, with .wasm served as application/wasm: a page
# opened from file:// cannot start Pyodide, so "Edit and run" needs this (any static server would do).
serve:
	$(PYTHON) tools/serve.py --port $(PORT) --root $(HTML_DIR)

# Pyodide's core from the npm registry, checked, unpacked into .cache/ (kept by make clean).
pyodide: $(PYODIDE_STAMP) $(SCAPY_WHEEL)

$(PYODIDE_STAMP):
	@command -v npm >/dev/null || { echo "npm (Debian: nodejs, npm) is needed to fetch Pyodide"; exit 1; }
	rm -rf $(PYODIDE_DIR) && mkdir -p $(PYODIDE_DIR)
	cd $(PYODIDE_DIR) && npm pack --silent pyodide@$(PYODIDE_VERSION) >/dev/null
	echo "$(PYODIDE_SHA256)  $(PYODIDE_DIR)/pyodide-$(PYODIDE_VERSION).tgz" | sha256sum --check --strict
	tar -xzf $(PYODIDE_DIR)/pyodide-$(PYODIDE_VERSION).tgz -C $(PYODIDE_DIR) --strip-components=1 \
	  package/package.json package/pyodide.js package/pyodide.asm.js package/pyodide.asm.wasm \
	  package/python_stdlib.zip package/pyodide-lock.json
	rm $(PYODIDE_DIR)/pyodide-$(PYODIDE_VERSION).tgz
	@touch $@

$(SCAPY_WHEEL): $(CONSTRAINTS) | $(STAMP)
	mkdir -p $(dir $@)
	$(PY) -m pip download --quiet --no-deps --only-binary :all: -c $(CONSTRAINTS) \
	  --dest $(dir $@) scapy==$(SCAPY_VERSION)
	@test -f $@

# ---------------------------------------------------------------- checks
test: system-packages $(STAMP)
	$(MAKE) --no-print-directory typecheck
	$(MAKE) --no-print-directory test-unit
	$(MAKE) --no-print-directory test-notebooks
	$(MAKE) --no-print-directory html
	$(MAKE) --no-print-directory test-browser
	@# Further steps go here, each one a target of its own that exits non-zero on failure.
	@echo "make test: every step passed."

# Unit and property tests of netsim, the pipeline guards, the environment.yml check.
test-unit: $(STAMP)
	NETSIM_NO_SKIPS=$$([ "$$(id -u)" -eq 0 ] && echo 1 || echo 0) $(PYTEST) tests

# The contributor's loop and the type check (listed by `make help` from these lines):
#   make test-fast  only the model's own unit and property tests (no kernel lab, no tools, no fuzz)
#   make typecheck  mypy on netsim, configured in pyproject.toml (the first step of make test)
# test-fast leaves out the `lab` and `tools` families (tests/conftest.py), and nbval's
# plugin, which tests/ does not use and which takes seconds to import. It lets Python cache
# bytecode even where PYTHONDONTWRITEBYTECODE is set: compiling every module it imports
# afresh on each run costs some 6 s of CPU (a third of the run) on the 2-core machine.
# The tests are spread over two worker processes (pytest-xdist; TEST_FAST_WORKERS=0 runs
# them in one): the machine and CI have two cores, and the run is some 25 s of CPU. Tests go
# out one by one and an idle worker takes queued ones from the other (--dist worksteal): with
# whole files (--dist loadfile) the last big file kept one worker busy alone, 14.5-14.9 s
# against 13.4-13.6 s, for the same CPU (module fixtures are cheap since clusters build fast).
TEST_FAST_WORKERS ?= 2
.PHONY: test-fast typecheck
test-fast: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(PYTEST) -p no:nbval -n $(TEST_FAST_WORKERS) --dist worksteal \
	  -m "not lab and not tools and not fuzz" tests

typecheck: $(STAMP)
	$(PY) -m mypy

# The stored outputs of every notebook in the book (the ones book/_toc.yml names) must match
# a fresh run; the list comes from the TOC, so stray notebooks are never collected.
test-notebooks: $(STAMP)
	notebooks="$$($(PY) tools/book_notebooks.py)"; \
	$(PYTEST) --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg $$notebooks

# Every built page loads in Chromium with no console error and no network request.
# Needs a built book (make html); fails, never skips, without one.
test-browser: $(STAMP)
	$(PYTEST) tests/browser

# ---------------------------------------------------------------- notebooks
# JupyterLab on the chapters, served from the repository's root (as on Binder) and opening
# notebooks/, so a chapter's links to the glossary and references (book/*.md) open too.
# The book's notebooks are trusted first, so their stored outputs
# (the steppers' HTML) render before any cell runs; jupyter_server_config.py adds the
# pre-save hook that keeps widget views and widget state out of saved notebooks.
lab: $(STAMP)
	notebooks="$$($(PY) tools/book_notebooks.py)"; \
	$(VENV)/bin/jupyter trust $$notebooks
	$(VENV)/bin/jupyter lab --config=jupyter_server_config.py --ServerApp.root_dir=. \
	  --LabApp.default_url=/lab/tree/notebooks \
	  $(if $(SUDO),,--allow-root) $(LAB_ARGS)

# Each chapter is notebooks/NN-name.md (MyST Markdown, what authors edit) paired with
# notebooks/NN-name.ipynb (the stored outputs): sync every .ipynb's cells from its .md,
# keeping the outputs of unchanged cells, then re-run every notebook in place.
notebooks: $(STAMP)
	$(PY) tools/make_notebooks.py
	$(PY) tools/execute_notebooks.py notebooks/[0-9][0-9]-*.ipynb

# Figures against the targets of issues #8 and #21 (BENCH_ARGS=--baseline REV: that commit beside the
# working tree, as ratios); the table is printed and written to bench-results.json.
bench: $(STAMP)
	$(PY) tools/bench.py $(BENCH_ARGS)

# ---------------------------------------------------------------- housekeeping
lock: $(STAMP)
	$(PY) tools/lock.py

clean:
	rm -rf $(BUILD_DIR)

distclean: clean
	rm -rf $(VENV) .pytest_cache .hypothesis $(CACHE_DIR)
