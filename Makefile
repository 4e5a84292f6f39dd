# mxnet_recpack developer entry points.
#   make demo   create .venv if needed, install, pack the built-in sample images and read them back
#   make test   create .venv if needed, install, run the test suite
#
# mxnet 1.9.1 (the last MXNet release) needs numpy<1.24, which has no wheels for Python 3.12+.
# We therefore need a Python 3.8-3.11 interpreter; set PYTHON=/path/to/python3.11 to choose one.

PYTHON ?= $(shell for p in python3.11 python3.10 python3.9 python3.8 python3; do \
            command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV   ?= .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test venv check-python benchmark clean

venv: $(STAMP)

check-python:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: no python3 found. Install Python 3.11 (mxnet 1.9.1 needs 3.8-3.11) and retry."; exit 1; fi
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; \
	  ok = (3, 8) <= v <= (3, 11); \
	  ok or print("error: %s is Python %d.%d, but mxnet==1.9.1 needs numpy<1.24, which has no wheels " \
	  "for Python 3.12 or newer. Install Python 3.11 and run: make PYTHON=python3.11 ..." % ((sys.executable,) + v)); \
	  sys.exit(0 if ok else 1)'

$(STAMP): setup.py | check-python
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VPY) -m mxnet_recpack.demo

test: $(STAMP)
	$(VPY) -m pytest $(PYTEST_ARGS)

benchmark: $(STAMP)
	$(VPY) benchmarks/bench.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo_output
