# videoproc: `make preprocess` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

MANIFEST ?= manifests/sample.parquet
OUTPUT ?= out/sample
CONFIG ?= jobs/preprocess.toml
ARGS ?=

QUEUE ?= manifests/prompts.parquet
MODEL ?= tiny-random
# OUTPUT names the preprocess output by default; `make generate` uses its own default unless
# OUTPUT is given on the command line.
GEN_OUTPUT := $(if $(filter command line,$(origin OUTPUT)),$(OUTPUT),out/generated)


.PHONY: venv sample-manifest preprocess test test-fast generate gpu-smoke bench s3-deps clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[generate,ray,dev]'
	touch $(STAMP)

# Rebuilt on every run (it takes a moment): it holds an absolute file:// URI of this checkout.
sample-manifest: $(STAMP)
	$(PY) -m jobs.build_manifests

preprocess: $(STAMP) sample-manifest
	$(PY) -m jobs.preprocess $(MANIFEST) --output $(OUTPUT) --config $(CONFIG) $(ARGS)

generate: $(STAMP)
	test -f $(QUEUE) || $(PY) -m jobs.build_prompts
	$(PY) -m jobs.generate $(QUEUE) --output $(GEN_OUTPUT) --model $(MODEL) $(ARGS)

gpu-smoke: $(STAMP)
	$(PY) -m jobs.gpu_smoke $(ARGS)

# The S3 tests need Ceph's RADOS Gateway (Debian packages); CI installs it, users may too.
s3-deps:
	bash tests/servers/install-ceph.sh

test: $(STAMP) sample-manifest
	$(PY) -m pytest -q $(ARGS)

test-fast: $(STAMP) sample-manifest
	$(PY) -m pytest -q -m "not slow" $(ARGS)

bench: $(STAMP)
	$(PY) -m bench.run $(ARGS)

clean:
	rm -rf out bench/results .pytest_cache
