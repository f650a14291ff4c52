# One command sets up and runs the main job (`make demo`), one sets up and runs the tests (`make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch/torchvision pair that installs on the project's CPU machines. GPU users:
# `make setup TORCH_SPEC=` keeps whatever torch the environment already resolves.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Every other package at the version the demo's figures were recorded with (constraints.txt);
# `pip install vrpsam` keeps pyproject's floors.
CONSTRAINTS := constraints.txt
STAMP := $(VENV)/.installed

.PHONY: setup test test-slow test-all demo lint format bench bench-quick lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install --quiet $(TORCH_SPEC); fi
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

# One worker per CPU core (pytest-xdist): each worker builds the session's shared trees and runs
# once for itself, and the suite still takes about half the time on 2 cores.
test: setup
	$(BIN)/python -m pytest -m "not slow" -q -n auto

# The heavier tests (the full demo against its recorded figures among them); CI runs them after `test`.
test-slow: setup
	$(BIN)/python -m pytest -m slow -q

test-all: setup
	$(BIN)/python -m pytest -q

# Rewrite constraints.txt from the current .venv (after a dependency change), torch stack left out.
lock: setup
	{ sed -n '/^#/p' $(CONSTRAINTS); $(BIN)/python -m pip freeze --all --exclude-editable \
	  | grep -v -i -E '^(torch|torchvision|triton|nvidia-.*|cuda-.*|setuptools|wheel)==' \
	  | LC_ALL=C sort -f; } > $(CONSTRAINTS).tmp && mv $(CONSTRAINTS).tmp $(CONSTRAINTS)

demo: setup
	$(BIN)/vrpsam-demo

bench: setup
	$(BIN)/vrpsam-bench --out bench.json

bench-quick: setup
	$(BIN)/vrpsam-bench --quick --out bench-quick.json

lint: setup
	$(BIN)/ruff check vrpsam conf tests scripts
	$(BIN)/ruff format --check vrpsam conf tests scripts

format: setup
	$(BIN)/ruff check --fix vrpsam conf tests scripts
	$(BIN)/ruff format vrpsam conf tests scripts

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache outputs
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
