# worldsim: `make demo` sets everything up and runs the demo; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch first, pinned: a bare `torch` requirement on a machine without it would pull a CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: setup demo lint test test-slow test-float-paths clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/worldsim demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# The tests that assert on a trained result (marker `learned`), once per float path this CPU can
# take: Intel and AMD machines run other kernels, so a margin must hold on all of them.
FLOAT_PATHS ?= NATIVE=1 ATEN_CPU_CAPABILITY=default ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=COMPATIBLE
test-float-paths: setup
	@for path in $(FLOAT_PATHS); do echo "== $$path"; env $$path $(BIN)/python -m pytest -q -m learned || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info runs/demo
