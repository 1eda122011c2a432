# polymodal: the two set-up commands are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# System packages that the tests and bundled datasets need (Debian names).
SYS_PACKAGES := espeak-ng tuxpaint-stamps-default dataset-fashion-mnist libcairo2 libsndfile1 chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: demo test test-all bench bench-quick lint format sysdeps venv lock clean model

demo: $(STAMP) sysdeps ## create .venv, install, run the main job on bundled data
	$(VENV)/bin/polymodal demo

test: $(STAMP) sysdeps ## create .venv if needed, run the default (fast) test suite
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP) sysdeps ## every test, the slow ones too
	$(PY) -m pytest $(PYTEST_ARGS)

# Debian packages of the labelled sets of the real-data suite (benchmarks/real_sets.py)
BENCH_PACKAGES := sonic-pi-samples klettres-data oxygen-icon-theme tango-icon-theme

bench: $(STAMP) sysdeps ## run every benchmark in full (hours on 2 CPUs); writes docs/benchmarks.md
	$(MAKE) sysdeps SYS_PACKAGES="$(BENCH_PACKAGES) $(GENERAL_PACKAGES)"
	$(PY) -m benchmarks

bench-quick: $(STAMP) sysdeps ## every benchmark on small data (minutes), to a scratch report
	$(MAKE) sysdeps SYS_PACKAGES="$(BENCH_PACKAGES) $(GENERAL_PACKAGES)"
	$(PY) -m benchmarks --quick

# Debian packages of the pictures and sounds builtin:general is trained and measured on
# (its corpus, polymodal.library.general.sources and .sound_sources) and of the mixed
# folder its library is measured on
GENERAL_PACKAGES := adwaita-icon-theme tango-icon-theme oxygen-icon-theme \
	papirus-icon-theme breeze-icon-theme gnome-icon-theme mate-icon-theme faenza-icon-theme \
	elementary-icon-theme numix-icon-theme wesnoth-1.16-data freeciv-data \
	deepin-icon-theme paper-icon-theme obsidian-icon-theme supertux-data hedgewars-data \
	dia-common sound-theme-freedesktop oxygen-sounds \
	0ad-data widelands-data supertuxkart-data minetest-data lincity-ng-data \
	deepin-sound-theme yaru-theme-sound psi-plus-sounds pingus-data frozen-bubble-data \
	extremetuxracer-data \
	yaru-theme-icon moka-icon-theme suru-icon-theme lxde-icon-theme

model: $(STAMP) ## train builtin:general's heads on the corpus into src/polymodal/models/ (shipped)
	$(MAKE) sysdeps SYS_PACKAGES="$(GENERAL_PACKAGES)"
	POLYMODAL_ENCODE_PROCESSES=$${POLYMODAL_ENCODE_PROCESSES:-$$(nproc)} $(PY) -m polymodal.library.general.build

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks

venv: $(STAMP)

# torch first (the CPU build from local disk), then everything else resolved against
# it, at the versions of constraints.txt (the set that CI proved).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Installs the Debian packages that are missing; does nothing when all are there.
sysdeps:
	@missing=""; for p in $(SYS_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Refresh constraints.txt from the current .venv (after changing dependencies).
lock: $(STAMP)
	$(PIP) freeze --exclude-editable | grep -v '^polymodal' > constraints.txt

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
