# Two commands from a fresh clone: `make demo` shows pmsync working, `make test` proves it.
# Both create .venv if there is none and reuse it afterwards; run either as often as you like.

VENV ?= .venv
PYTHON ?= python3
DEMO_DIR ?= pmsync-demo
BIN := $(VENV)/bin

# The development install is a link tree of the source files (setuptools' strict editable
# mode), which mypy and import-linter can read. It is redone when the list of files changes
# (a new module needs a new link) or pyproject.toml does, not when a module is edited.
SOURCE_LIST := $(VENV)/.pmsync-sources
# pip's output (and setuptools' notes about the editable install) go here, shown on failure.
INSTALL_LOG := $(VENV)/pip-install.log
# pyproject.toml's text counts too: a new dependency after a `git pull` is installed.
SOURCES_NOW := $(shell { git ls-files --cached --others --exclude-standard \
	foundation connectors sync app testing simulators mappings pyproject.toml 2>/dev/null \
	| LC_ALL=C sort; cat pyproject.toml; } | cksum)

CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test lint check-sources browser

demo: $(VENV)/.installed
	$(BIN)/pmsync demo --dir $(DEMO_DIR)

# The suite runs as in an activated environment: tests that start `pmsync` find it on PATH.
# One pytest-xdist worker per core: every test has its own ports, files and PostgreSQL schema.
test: $(VENV)/.installed-dev lint browser
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n auto

# The web view's browser tests drive Debian's Chromium (Playwright cannot download a browser
# here). Installed when missing and running as root (CI); otherwise those tests are skipped.
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "no $(CHROMIUM): the browser tests will be skipped (apt-get install chromium)"; \
		fi; \
	fi

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy tests benchmarks
	$(BIN)/lint-imports

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip > /dev/null 2>&1 || true

check-sources: $(BIN)/python
	@if [ "$$(cat $(SOURCE_LIST) 2>/dev/null)" != "$(SOURCES_NOW)" ]; then \
		rm -f $(VENV)/.installed $(VENV)/.installed-dev; \
	fi

$(VENV)/.installed: check-sources
	@if [ ! -f $@ ]; then \
		echo "installing pmsync into $(VENV) (log: $(INSTALL_LOG))"; \
		$(BIN)/python -m pip install -e . --config-settings editable_mode=strict \
			> $(INSTALL_LOG) 2>&1 || { tail -n 30 $(INSTALL_LOG); exit 1; }; \
		echo "$(SOURCES_NOW)" > $(SOURCE_LIST) && touch $@; \
	fi

$(VENV)/.installed-dev: check-sources
	@if [ ! -f $@ ]; then \
		echo "installing pmsync and its development tools into $(VENV) (log: $(INSTALL_LOG))"; \
		$(BIN)/python -m pip install -e '.[dev]' --config-settings editable_mode=strict \
			> $(INSTALL_LOG) 2>&1 || { tail -n 30 $(INSTALL_LOG); exit 1; }; \
		echo "$(SOURCES_NOW)" > $(SOURCE_LIST) && touch $(VENV)/.installed $@; \
	fi
