# Every target sets itself up: a fresh clone needs nothing installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint test-matrix clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python setup.cfg setup.py
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check beeline tests

DEMO_TRACES := .demo-traces.jsonl

demo: $(STAMP)
	@rm -f $(DEMO_TRACES)
	BEELINE_TRACE_FILE=$(DEMO_TRACES) BEELINE_LOCAL_STDERR=false $(BIN)/python examples/hello-world/app.py
	$(BIN)/python -m beeline view $(DEMO_TRACES)

clean:
	rm -rf $(VENV) build *.egg-info

# Each framework's tests against its oldest and newest supported release (noxfile.py).
test-matrix: $(STAMP)
	$(BIN)/python -m nox --non-interactive
