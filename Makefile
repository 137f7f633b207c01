# Seamwise: `make serve` and `make test` work on a fresh machine.
PY      ?= python3.11
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.setup-stamp
# CPU build of torch by default; the installer picks a CUDA/MPS build on machines that have one.
TORCH   ?= torch==2.13.0

.PHONY: setup serve test test-python test-js test-lua package clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "$(TORCH)"
	$(VPY) -m pip install -q -e ".[test,train]"
	touch $(STAMP)

serve: setup
	$(VENV)/bin/seamwise serve

test: setup test-python

test-python:
	HF_HUB_OFFLINE=1 $(VPY) -m pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info
