# Quick start: `make demo` (train + evaluate on synthetic faces), `make test` and `make lint` (ruff, configured in
# pyproject.toml). Each creates .venv on first use (pip install -c constraints.txt -e ".[dev]": the tests, every
# optional backend they test, and ruff) and reuses it afterwards.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.facelib-installed

.PHONY: demo test test-fast test-avx2 lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/facelib demo

test: $(STAMP)
	$(BIN)/python -m pytest tests notebooks --nbval-lax -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not slow and not browser"

# The tests as an AVX2-only CPU runs them, on a newer x86 CPU: PyTorch's kernels dispatched as AVX2 and oneDNN
# capped at AVX2 (so training runs in fp32, as there). Floating-point reduction order differs between the two.
test-avx2: $(STAMP)
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 $(BIN)/python -m pytest tests -q -m "not browser"

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf facelib-demo .pytest_cache
