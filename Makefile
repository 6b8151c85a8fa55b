# Two commands matter on a fresh machine: `make demo` and `make test`. Both create .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-quality clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[serve,onnx]" pytest pytest-timeout ruff playwright httpx onnx onnxruntime nltk statsmodels
	touch $(STAMP)

demo: $(STAMP)
	rm -rf demo-run
	$(BIN)/rnnlab train --out demo-run --preset tiny --lr 6e-3 --max-time 3m --eval-every 200 --eval-tokens 100000
	$(BIN)/rnnlab sample demo-run --length 600 --temperature 0.8 --seed 1 --prime "def "

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# Speed checks (minutes). Each script writes benchmarks/results/<name>.md with its command and machine.
bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/cells.py
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python benchmarks/reference_speed.py

# Quality under the 20-minute CPU budget (needs ../shared/data; about 45 minutes each; the two can run at once).
bench-quality: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[bench]"
	$(BIN)/python benchmarks/quality.py --corpus shakespeare --time 20m --threads 1
	$(BIN)/python benchmarks/quality.py --corpus linux --time 20m --threads 1 -- --tokenizer byte

clean:
	rm -rf $(VENV) demo-run .pytest_cache .ruff_cache
