# Quick start: `make demo` (train + evaluate on synthetic faces) and `make test`.
# Both create .venv on first use (pip install -c constraints.txt -e ".[dev]") and reuse it afterwards.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.facelib-installed

.PHONY: demo test test-fast venv clean

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

clean:
	rm -rf facelib-demo .pytest_cache
