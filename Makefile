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
	$(BIN)/python examples/distributed/run.py $(DEMO_TRACES)

clean:
	rm -rf $(VENV) .nox benchmarks/.venvs build *.egg-info $(DEMO_TRACES)

# Each framework's tests against its oldest and newest supported release (noxfile.py).
test-matrix: $(STAMP)
	$(BIN)/python -m nox --non-interactive

# Ours (from .venv) against honeycomb-beeline 3.6.0 in its own virtualenv, interleaved; one table.
# The reference's Flask middleware needs Flask < 3 (it reads the removed `signals_available`);
# Django, Bottle and Tornado get the same versions as .venv, so both imports see the same packages.
REF_VENV := benchmarks/.venvs/ref
REF_STAMP := $(REF_VENV)/.installed

$(REF_STAMP): $(STAMP)
	$(PYTHON) -m venv $(REF_VENV)
	$(BIN)/python -m pip freeze | grep -i -E '^(django|bottle|tornado|asgiref|sqlparse)==' > $(REF_VENV)/constraints.txt
	$(REF_VENV)/bin/python -m pip install -q -c $(REF_VENV)/constraints.txt \
		'honeycomb-beeline==3.6.0' 'flask>=2.3,<3' 'werkzeug<3' django bottle tornado
	touch $(REF_STAMP)

bench: $(STAMP) $(REF_STAMP)
	@status=0; $(BIN)/python benchmarks/run.py --ref-python $(REF_VENV)/bin/python || status=$$?; \
	if [ -f benchmarks/transmission_bench.py ]; then $(BIN)/python benchmarks/transmission_bench.py || status=1; fi; \
	exit $$status
