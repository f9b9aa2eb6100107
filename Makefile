# Every target installs what it needs: a fresh clone needs only Python 3.10+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# pip constraints: the pinned dev tools, plus (make test-lowest) every dependency at its lower bound
CONSTRAINTS ?= -c constraints/dev.txt
# two pytest workers a core: the suite waits more than it computes (sandbox processes,
# timeouts, the browser); on 2 cores 4 workers took 0.70 of the time of 2, run side by side
WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 2) * 2 )))
PYTEST_ARGS ?= -q -n $(WORKERS)
EXTRAS ?= dev,bench

.PHONY: install browser screenshots demo test lint typecheck format completions bench soak fuzz check-fresh clean \
	test-lowest test-newest install-lowest install-newest check-dist ci

$(STAMP): pyproject.toml constraints/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python scripts/demo.py

# the inbox's browser tests need the system's Chromium: installed here where we can
browser:
	@sh scripts/ensure_chromium.sh

test: install browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the README's screenshots of the inbox and a message (docs/images), taken by the browser test
screenshots: install browser
	SCREENSHOTS_DIR=$(CURDIR)/docs/images $(BIN)/python -m pytest -q -p no:xdist \
		tests/test_inbox_browser.py -k test_screenshots

# the oldest supported Python with every dependency at its declared lower bound, and the newest
LOWEST := VENV=.venv-3.10-lowest PYTHON="$$(sh scripts/find_python.sh 3.10)" EXTRAS=dev \
	CONSTRAINTS="-c constraints/dev.txt -c .lowest-constraints.txt"
NEWEST := VENV=.venv-3.13 PYTHON="$$(sh scripts/find_python.sh 3.13)"

install-lowest: install
	$(BIN)/python scripts/lowest_constraints.py > .lowest-constraints.txt
	$(MAKE) install $(LOWEST)

install-newest:
	$(MAKE) install $(NEWEST)

# the suite on the oldest supported Python with every dependency at its declared lower bound
test-lowest: install-lowest
	$(MAKE) test $(LOWEST)

# the suite on the newest supported Python
test-newest: install-newest
	$(MAKE) test $(NEWEST)

typecheck: install
	$(BIN)/mypy

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

# build the sdist and wheel; the wheel installs from wheels only; the sdist holds its test suite
check-dist: install
	sh scripts/check_dist.sh $(BIN)/python

# what .ci/run runs
ci: test lint typecheck test-newest test-lowest check-dist

clean:
	rm -rf $(VENV) .venv-3.* .lowest-constraints.txt build dist *.egg-info .pytest_cache .ruff_cache .hypothesis .mypy_cache
