# mxnet_recpack developer entry points.
#   make demo       create .venv if needed, install, pack the built-in sample images and read them back
#   make test       lint, then the whole test suite in every environment it needs (created if missing):
#                     .venv            Python 3.8-3.11 with MXNet 1.9.1 (numpy<1.24): everything
#                     .venv-nomx       the same Python, numpy 2, no MXNet, PyTorch CPU, NVIDIA DALI,
#                                      the formats' own libraries, and Playwright driving Debian's
#                                      chromium (installed with apt-get when missing, as root)
#                     .venv-new        a Python 3.12+ if the machine has one: the MXNet-free suite
#   make test-fast  the MXNet environment only, without the slow, S3, Dask and notebook tests,
#                   and the crash test at every 9th file-system call instead of every one
#   make benchmark  recpack vs MXNet's tools/im2rec.py (benchmark-reader, -files, -ops, -versions:
#                   the reader, appends and verify, the operations on existing files, two commits)
#
# mxnet 1.9.1 (the last MXNet release) needs numpy<1.24, which has no wheels for Python 3.12+, so
# the MXNet environment needs a Python 3.8-3.11 interpreter: set PYTHON=/path/to/python3.11.

PYTHON ?= $(shell for p in python3.11 python3.10 python3.9 python3.8 python3; do \
            command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
NEW_PYTHON ?= $(shell tools/find-new-python)
VENV      ?= .venv
VENV_NOMX ?= .venv-nomx
VENV_NEW  ?= .venv-new
VPY       := $(VENV)/bin/python
NOMXPY    := $(VENV_NOMX)/bin/python
NEWPY     := $(VENV_NEW)/bin/python
GOLDEN    := build/golden
PYTEST_ARGS ?=
FAST      := not slow and not s3 and not dask and not notebooks and not crossenv

.PHONY: demo test test-fast lint venv venvs check-python chromium benchmark benchmark-reader \
        benchmark-files benchmark-ops benchmark-versions benchmark-formats clean

venv: $(VENV)/.installed

check-python:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: no python3 found. Install Python 3.11 (mxnet 1.9.1 needs 3.8-3.11) and retry."; exit 1; fi
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; \
	  ok = (3, 8) <= v <= (3, 11); \
	  ok or print("error: %s is Python %d.%d, but mxnet==1.9.1 needs numpy<1.24, which has no wheels " \
	  "for Python 3.12 or newer. Install Python 3.11 and run: make PYTHON=python3.11 ..." % ((sys.executable,) + v)); \
	  sys.exit(0 if ok else 1)'

# The MXNet environment: everything, the demo and the benchmarks.
$(VENV)/.installed: setup.py pyproject.toml | check-python
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e ".[mxnet,test,test-notebooks]"
	# InsightFace's own RecBuilder, run by a test: its pure-Python package alone (its
	# dependencies, onnxruntime first, need numpy 2; the test loads the module from its file)
	$(VPY) -m pip install --quiet --no-deps "insightface==2.1"
	@touch $@

# numpy 2 and no MXNet, with PyTorch (the CPU wheel on these machines) and NVIDIA DALI.
$(VENV_NOMX)/.installed: setup.py pyproject.toml | check-python
	@test -x $(NOMXPY) || $(PYTHON) -m venv $(VENV_NOMX)
	$(NOMXPY) -m pip install --quiet --upgrade pip
	$(NOMXPY) -m pip install --quiet -e \
	  ".[test,test-torch,test-dali,test-formats,test-notebooks,test-browser]" "numpy>=2"
	$(NOMXPY) -m pip install --quiet --no-deps "mosaicml-streaming==0.13.0"
	@touch $@

# A Python 3.12+ if there is one: no MXNet and no torch wheel exist there; DALI where it installs.
$(VENV_NEW)/.installed: setup.py pyproject.toml
	@test -x $(NEWPY) || $(NEW_PYTHON) -m venv $(VENV_NEW)
	$(NEWPY) -m pip install --quiet --upgrade pip
	$(NEWPY) -m pip install --quiet -e ".[test,test-dali]" || \
	  { echo "DALI does not install for $(NEW_PYTHON): testing without it"; \
	    $(NEWPY) -m pip install --quiet -e ".[test]"; }
	@touch $@

venvs: $(VENV)/.installed $(VENV_NOMX)/.installed $(if $(NEW_PYTHON),$(VENV_NEW)/.installed)

# The browser tests (`recpack browse`) drive Debian's chromium through Playwright.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "error: the browser tests need Chromium: run 'sudo apt-get install chromium'" \
	    "(Debian, Ubuntu: chromium-browser), then make test again"; exit 1; fi

demo: $(VENV)/.installed
	$(VPY) -m mxnet_recpack.demo

lint: $(VENV)/.installed
	$(VPY) -m ruff check mxnet_recpack tests benchmarks setup.py

# The MXNet environment writes the cross-environment files ($(GOLDEN)), checked by MXNet's own
# readers; the others write the same files and compare them byte for byte.
test: lint venvs chromium
	@rm -rf $(GOLDEN) && mkdir -p $(GOLDEN)
	@echo "== 1/3: $$($(VPY) -c 'import sys, numpy; print("Python %d.%d" % sys.version_info[:2], "numpy", numpy.__version__)'), MXNet ($(VENV))"
	RECPACK_GOLDEN_DIR=$(abspath $(GOLDEN)) RECPACK_REQUIRE=insightface $(VPY) -m pytest $(PYTEST_ARGS)
	@echo "== 2/3: $$($(NOMXPY) -c 'import sys, numpy; print("Python %d.%d" % sys.version_info[:2], "numpy", numpy.__version__)'), no MXNet, PyTorch, DALI and Chromium ($(VENV_NOMX))"
	RECPACK_GOLDEN_DIR=$(abspath $(GOLDEN)) RECPACK_REQUIRE=torch,dali,formats,browser $(NOMXPY) -m pytest $(PYTEST_ARGS)
	@if [ -n "$(NEW_PYTHON)" ]; then \
	  echo "== 3/3: $$($(NEWPY) -c 'import sys; print("Python %d.%d" % sys.version_info[:2])'), no MXNet ($(VENV_NEW))"; \
	  req=$$($(NEWPY) -c 'import importlib.util as u; print("dali" if u.find_spec("nvidia.dali") else "")'); \
	  RECPACK_GOLDEN_DIR=$(abspath $(GOLDEN)) RECPACK_REQUIRE=$$req $(NEWPY) -m pytest $(PYTEST_ARGS) || exit 1; \
	else echo "== 3/3: no Python 3.12+ interpreter on this machine (looked for python3.14, python3.13, python3.12 on PATH and in pyenv): not run"; fi
	@echo "== interpreters that ran the tests: $(PYTHON) (MXNet), $(PYTHON) (numpy 2, no MXNet)$(if $(NEW_PYTHON),$(comma) $(NEW_PYTHON) (no MXNet),; no Python 3.12+ found)"

comma := ,

test-fast: $(VENV)/.installed
	$(VPY) -m ruff check mxnet_recpack tests benchmarks setup.py
	RECPACK_CRASH_STRIDE=9 $(VPY) -m pytest -x -q -m "$(FAST)" $(PYTEST_ARGS)

benchmark: $(VENV)/.installed
	$(VPY) benchmarks/bench.py

# The other benchmarks (see benchmarks/README.md); each prints a Markdown report.
benchmark-reader: $(VENV)/.installed $(VENV_NOMX)/.installed
	$(VPY) benchmarks/bench_reader.py --nomx-python $(NOMXPY)

benchmark-files: $(VENV)/.installed
	$(VPY) benchmarks/bench_files.py

benchmark-ops: $(VENV)/.installed
	$(VPY) benchmarks/bench_ops.py

benchmark-versions: $(VENV)/.installed
	$(VPY) benchmarks/bench_versions.py

benchmark-formats: $(VENV)/.installed $(VENV_NOMX)/.installed
	$(VPY) benchmarks/bench_formats.py --nomx-python $(NOMXPY)

clean:
	rm -rf $(VENV) $(VENV_NOMX) $(VENV_NEW) build *.egg-info .pytest_cache demo_output
