# One entry point. `make serve` and `make test` set everything up on a fresh machine first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 3000

.PHONY: setup system-packages serve test lint format train-default clean

setup: $(VENV)/.installed

# Everything from pyproject.toml, pinned by constraints.txt (torch==2.13.0 among them).
$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[train,dev]'
	touch $@

serve: setup
	$(PY) -m service serve --port $(PORT)

# The Debian packages the tests drive or read (nginx, chromium, the emoji font, ...), when missing.
system-packages:
	.ci/system-packages

test: setup system-packages
	$(PY) -m pytest

# ruff (configured in pyproject.toml): lint and formatting are checked over the whole tree.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
