# Two commands matter on a fresh machine: `make demo` and `make test`. Both create .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e . pytest pytest-timeout ruff playwright httpx
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rnnlab train --out demo-run --preset small --max-time 3m --eval-every 100 --eval-tokens 100000
	$(BIN)/rnnlab sample demo-run --length 600 --temperature 0.7 --seed 1 --prime "def "

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/quality.py

clean:
	rm -rf $(VENV) demo-run .pytest_cache .ruff_cache
