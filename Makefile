# The two commands of the README's quick start: `make demo` and `make test`.
# Both create the local virtual environment .venv on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-long bench clean-keys clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mpay demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Long hypothesis profiles and soak runs (see docs/testing.md).
test-long: $(STAMP)
	MPAY_LONG=1 $(BIN)/python -m pytest -q

clean-keys: $(STAMP)
	$(BIN)/mpay keys --clear

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
