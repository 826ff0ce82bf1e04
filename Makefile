# The two commands a new user needs (see README):
#   make run   - install gopatch and run the main job on the built-in defaults
#   make test  - install gopatch with its test extras and run the whole test suite (what CI runs)
# Both create ./.venv on first use; nothing is installed outside it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install run test test-unit test-builds lint bench fuzz difftest clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(BIN)/.installed

# Main job: GOROOT source of go1.27.3 -> the patch series -> a stamped toolchain for this host
# -> proof that it carries the patches -> a release directory (archives, checksums, manifest).
run: install
	$(BIN)/gopatch checkout
	$(BIN)/gopatch apply --all
	$(BIN)/gopatch build
	$(BIN)/gopatch verify --html out/verify.html
	$(BIN)/gopatch release

lint: install
	$(BIN)/ruff check pipeline tests bench

# The whole suite, as CI runs it: unit tests, then the end-to-end tests with two real make.bash
# builds of go1.27.3 (Docker from an empty cache, then the host executor; each also builds
# linux/arm64 through the cross shortcut) and `try`-style GOROOTs where patched sources compiled
# by the vanilla compiler prove the same (~28 min on 2 cores; each build runs once per session
# and is shared, see tests/e2e/conftest.py). `make test-unit` is the fast part alone.
test: lint
	$(BIN)/pytest

test-unit: lint
	$(BIN)/pytest tests/unit

# The real builds `make test` leaves out (pytest marker full_build): go1.26.6 + its series, the
# go1.27 series minus its last patch, and a direct cross make.bash against the shortcut, besides
# the Docker build they need (~33 min on 2 cores).
test-builds: lint
	$(BIN)/pytest -m full_build tests/e2e

bench: install
	$(BIN)/python bench/apply.py
	$(BIN)/python bench/build.py

# The differential suite (gopatch's apply engine vs `git apply`, tests/unit/test_patch_differential.py)
# with random seeds and 2,000 cases per category instead of CI's fixed 120 (DIFFTEST_EXAMPLES=N
# to change it); prints the per-category table. `make difftest` prints the same table from
# bench/differential.py, which counts every disagreement instead of stopping at the first.
fuzz: install
	DIFFTEST_PROFILE=difftest-fuzz $(BIN)/pytest tests/unit/test_patch_differential.py -p no:cacheprovider

difftest: install
	$(BIN)/python bench/differential.py --cases $${DIFFTEST_EXAMPLES:-200}

clean:
	rm -rf $(VENV) goroot out dist
