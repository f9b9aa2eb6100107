# Every target installs what it needs: a fresh clone needs only Python 3.10+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint format completions bench soak fuzz check-fresh clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python scripts/demo.py

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

completions: install
	$(BIN)/python scripts/gen_completions.py

bench: install
	$(BIN)/python bench/run_all.py

# 8 concurrent `send --batch` clients for 60 s against a faulty sandbox (bench/results/soak.json)
soak: install
	$(BIN)/python bench/soak.py

# the property and sandbox fuzz tests with 40 times the examples; prints how many inputs
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -s tests/test_properties.py tests/test_fuzz_sandbox.py

# a fresh clone's `make demo` and `make test` with a fresh HOME and no venv (not part of test)
check-fresh:
	sh scripts/check_fresh.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
