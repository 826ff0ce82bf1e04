# The two commands a new user needs (see README):
#   make run   - install gopatch and run the main job on the built-in defaults
#   make test  - install gopatch with its test extras and run the whole test suite
# Both create ./.venv on first use; nothing is installed outside it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(BIN)/.installed

# Main job: GOROOT source of go1.27.3 -> the patch series -> a stamped toolchain for this host
# -> proof that it carries the patches.
run: install
	$(BIN)/gopatch checkout
	$(BIN)/gopatch apply --all
	$(BIN)/gopatch build
	$(BIN)/gopatch verify

lint: install
	$(BIN)/ruff check pipeline tests bench

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/apply.py
	$(BIN)/python bench/build.py

clean:
	rm -rf $(VENV) goroot out dist
