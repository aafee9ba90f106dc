# Two entry points for a fresh machine (see README): `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
STORE   ?= ./featurestore.zarr

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/featurestore demo --store $(STORE)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check featurestore featurestore_app probes tests benchmarks notebooks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.extract
	$(BIN)/python -m benchmarks.probes

clean:
	rm -rf $(STORE) build *.egg-info
