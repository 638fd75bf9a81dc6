# videoproc: `make preprocess` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

SAMPLE := manifests/sample.parquet
MANIFEST ?= $(SAMPLE)
OUTPUT ?= out/sample
CONFIG ?= jobs/preprocess.toml
ARGS ?=

QUEUE ?= manifests/prompts.parquet
MODEL ?= tiny-random
GEN_CONFIG ?= jobs/generate.toml
# OUTPUT names the preprocess output by default; `make generate` uses its own default unless
# OUTPUT is given on the command line.
GEN_OUTPUT := $(if $(filter command line,$(origin OUTPUT)),$(OUTPUT),out/generated)


# The torch of the test environment; pyproject.toml's extras accept a range, and this pins the
# one the tests run against (a CPU build where the package index provides it).
TORCH_VERSION ?= 2.13.0

.PHONY: venv sample-manifest preprocess test test-fast lint generate gpu-smoke bench bench-short bench-clips bench-formats bench-scale s3-deps clean FORCE

venv: $(STAMP)

# Everything the tests need: the reader and generation extras bring torch, dev brings pytest and ruff.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[read,generate,ray,dev]' 'torch==$(TORCH_VERSION)'
	touch $(STAMP)

# The bundled sample manifest is rebuilt only when what it is made of changed: the script, the
# synthetic clips' commands and the media. One row is a file:// URI, which must be absolute, so it
# names this checkout's folder; the folder it was built in is recorded beside it, and a checkout
# that moved (recorded folder != this one) rebuilds it too.
SAMPLE_ROOT := manifests/.sample-root
SAMPLE_INPUTS := jobs/build_manifests.py videoproc/common/testmedia.py $(wildcard manifests/media/real/* manifests/media/generated/*)
SAMPLE_MOVED := $(if $(filter $(CURDIR),$(file <$(SAMPLE_ROOT))),,FORCE)
$(SAMPLE): $(SAMPLE_INPUTS) $(SAMPLE_MOVED) | $(STAMP)
	$(PY) -m jobs.build_manifests
	echo '$(CURDIR)' > $(SAMPLE_ROOT)

sample-manifest: $(SAMPLE)

FORCE:

# Another MANIFEST leaves the sample alone.
preprocess: $(STAMP) $(filter $(SAMPLE),$(MANIFEST))
	$(PY) -m jobs.preprocess $(MANIFEST) --output $(OUTPUT) --config $(CONFIG) $(ARGS)

generate: $(STAMP)
	test -f $(QUEUE) || $(PY) -m jobs.build_prompts
	$(PY) -m jobs.generate $(QUEUE) --output $(GEN_OUTPUT) --model $(MODEL) --config $(GEN_CONFIG) $(ARGS)

gpu-smoke: $(STAMP)
	$(PY) -m jobs.gpu_smoke $(ARGS)

# The S3 tests need Ceph's RADOS Gateway (Debian packages); CI installs it, users may too.
s3-deps:
	bash tests/servers/install-ceph.sh

test: $(STAMP) $(SAMPLE) lint
	$(PY) -m pytest -q $(ARGS)

test-fast: $(STAMP) $(SAMPLE)
	$(PY) -m pytest -q -m "not slow" $(ARGS)

# Rules and line length are in pyproject.toml; any finding fails the build.
lint: $(STAMP)
	$(PY) -m ruff check .

# The peers (decord) come with the bench extra, installed here only: the tests do not need them.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench.run $(ARGS)

# Many short clips: videoproc with 1 worker against PyAV alone, and the fixed cost per video
# (python -m bench.short_clips; --count N for fewer than 1,000 clips).
bench-short: $(STAMP)
	$(PY) -m bench.short_clips $(ARGS)

# Clip mode against a naive decode on the 600 s 720p files (python -m bench.clips).
bench-clips: $(STAMP)
	$(PY) -m bench.clips $(ARGS)

# Bytes per row, write and read throughput of every --frame-format (python -m bench.frame_formats).
bench-formats: $(STAMP)
	$(PY) -m bench.frame_formats $(ARGS)

# Driver peak RSS and time to the first shard for 100k, 1M and 10M-row manifests (python -m bench.manifest_scale).
bench-scale: $(STAMP)
	$(PY) -m bench.manifest_scale $(ARGS)

clean:
	rm -rf out bench/results .pytest_cache
