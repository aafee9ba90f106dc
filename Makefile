# Two entry points for a fresh machine (see README): `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
STORE   ?= ./featurestore.zarr

.PHONY: demo test lint bench clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/featurestore demo --store $(STORE)

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# The catalog page's test drives a real headless Chromium; install Debian's where we can (root,
# apt reachable). Best effort: without a browser that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1; } || true

lint: $(STAMP)
	$(BIN)/ruff check featurestore featurestore_app probes tests benchmarks notebooks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.extract
	$(BIN)/python -m benchmarks.probes

clean:
	rm -rf $(STORE) build *.egg-info
