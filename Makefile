# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= out/demo

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,dask,s3]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m driftwatch.demo.run --out $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# On demand, never in CI: the three-way comparison at 1M rows per side, then the whole audit at scale 100.
bench: $(STAMP)
	$(BIN)/python bench/compare.py --rows 1M
	$(BIN)/python bench/audit_scale.py --scale 100

clean:
	rm -rf $(VENV) out
