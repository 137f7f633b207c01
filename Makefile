# Seamwise. On a fresh machine `make serve` and `make test` set everything up first.
PY      ?= python3.11
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.setup-stamp
NODE_STAMP := bridge_uxp/node_modules/.setup-stamp
# CPU build of torch by default (a plain `torch` requirement would pull a multi-GB CUDA build);
# installer/ picks the CUDA or Apple build on machines that have one: make setup TORCH=...
TORCH   ?= torch==2.13.0

.PHONY: setup serve test test-python test-js package clean

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "$(TORCH)"
	$(VPY) -m pip install -q -e ".[test,train,cluster]"
	touch $(STAMP)

$(NODE_STAMP): bridge_uxp/package.json bridge_uxp/package-lock.json
	cd bridge_uxp && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

serve: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/seamwise serve

test: setup
	$(MAKE) test-python test-js

test-python:
	HF_HUB_OFFLINE=1 $(VPY) -m pytest -q -p no:cacheprovider

test-js:
	cd bridge_uxp && npm test

package: setup
	bash installer/package_uxp.sh
	bash installer/package_lightroom.sh

clean:
	rm -rf $(VENV) bridge_uxp/node_modules build dist *.egg-info
