# Both targets start from nothing but Python: they create .venv and install edgekd into it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# a second, torch-free environment with onnxruntime-openvino (it replaces the onnxruntime package, so it cannot
# share .venv): the tests run `edgekd bench --ep openvino` there for real
OV     ?= .venv-openvino

.PHONY: demo test test-fast lint bench wheel clean

$(BIN)/edgekd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 first: the CPU build (a looser range would pull a multi-GB CUDA build)
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[train,dev,hf,report]"
	touch $(BIN)/edgekd

demo: $(BIN)/edgekd
	$(BIN)/edgekd demo

$(OV)/bin/python: pyproject.toml
	$(PYTHON) -m venv $(OV)
	$(OV)/bin/pip install --quiet "onnxruntime-openvino>=1.20,<1.25" "onnx>=1.17,<1.25" "click>=8.1,<9" \
		"rich>=13,<16" "numpy>=1.26,<3"
	touch $(OV)/bin/python

test: $(BIN)/edgekd $(OV)/bin/python
	EDGEKD_OPENVINO_PYTHON=$(abspath $(OV))/bin/python $(BIN)/python -m pytest

test-fast: $(BIN)/edgekd  # leaves out the tests marked slow (CI runs them all)
	$(BIN)/python -m pytest -m "not slow"

lint: $(BIN)/edgekd
	$(BIN)/ruff check edgekd tests benchmarks

# edgekd is not on the package index: this is the wheel to install elsewhere (pip install dist/edgekd-*.whl is
# the runtime a device needs; add [train] for distill)
wheel: $(BIN)/edgekd
	$(BIN)/pip wheel --no-deps --no-build-isolation -q -w dist .
	@ls dist/edgekd-*.whl

bench: $(BIN)/edgekd
	$(BIN)/python benchmarks/demo_figures.py

clean:
	rm -rf $(VENV) $(OV) runs build dist *.egg-info
