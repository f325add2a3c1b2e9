# Both targets start from nothing but Python: they create .venv and install edgekd into it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/edgekd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 first: the CPU build (a looser range would pull a multi-GB CUDA build)
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/edgekd

demo: $(BIN)/edgekd
	$(BIN)/edgekd demo

test: $(BIN)/edgekd
	$(BIN)/python -m pytest

bench: $(BIN)/edgekd
	$(BIN)/python benchmarks/demo_figures.py

clean:
	rm -rf $(VENV) runs build *.egg-info
