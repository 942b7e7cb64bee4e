# The two commands of the README's quick start: `make demo` and `make test`.
# Both create the local virtual environment .venv on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-long bench clean-keys clean check-report

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

# The report in a real browser (docs/report.md): run a scenario, render its report.html with
# headless Chromium (installed with apt-get when missing; CI runs as root), check the dumped
# DOM has the SVG sequence diagram and the tables, and that the screenshot is not blank.
REPORT_SCENARIO ?= scenarios/dispute.toml
REPORT_DIR := out/check-report
CHROMIUM_FLAGS := --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync
check-report: $(STAMP)
	command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium; }
	rm -rf $(REPORT_DIR)
	$(BIN)/mpay run $(REPORT_SCENARIO) --out $(REPORT_DIR) --quiet
	test -f $(REPORT_DIR)/report.html || { echo "mpay run wrote no $(REPORT_DIR)/report.html" >&2; exit 1; }
	profile=$$(mktemp -d) && trap 'rm -rf "$$profile"' EXIT && \
	timeout 120 chromium $(CHROMIUM_FLAGS) --user-data-dir="$$profile" \
		--dump-dom "file://$(CURDIR)/$(REPORT_DIR)/report.html" \
		>$(REPORT_DIR)/report.dom 2>$(REPORT_DIR)/chromium.log && \
	timeout 120 chromium $(CHROMIUM_FLAGS) --user-data-dir="$$profile" --window-size=1280,2400 \
		--screenshot="$(CURDIR)/$(REPORT_DIR)/report.png" "file://$(CURDIR)/$(REPORT_DIR)/report.html" \
		>>$(REPORT_DIR)/chromium.log 2>&1 || { cat $(REPORT_DIR)/chromium.log >&2; exit 1; }
	$(BIN)/python -m mpay.present.report --check $(REPORT_DIR)/report.dom --screenshot $(REPORT_DIR)/report.png
	@echo "screenshot: $(REPORT_DIR)/report.png"

# All the performance figures of docs/performance.md (several minutes; `mpay bench --quick`
# for a short run).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/mpay bench

clean-keys: $(STAMP)
	$(BIN)/mpay keys --clear

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
