# One command to run, one to test; each installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: up down install bench-deps models embedder-model pair-model verifier-model system-tools image-tools run test test-cluster image-test lint docs package-test bench chaos fuzz quality real-prompts audit-bench library-bench clean

# PyPI's torch is the multi-GB CUDA build: the CPU build comes from a local wheel when pip
# has one (its find-links), else from PyTorch's CPU index
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-deps --no-index torch==2.13.0 2>/dev/null || \
	  $(PY) -m pip install --quiet torch==2.13.0 --index-url $(TORCH_INDEX_URL) \
	    --extra-index-url https://pypi.org/simple
	$(PY) -m pip install --quiet -e '.[dev,train]'
	touch $(STAMP)

install: $(STAMP)

# nginx, docker-compose, chromium and prometheus (Debian's) for the load-balancer, compose,
# dashboard and metrics tests; installed when missing and apt is usable (root), else those
# tests say they were skipped.
system-tools:
	@if { command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx; } && command -v docker-compose >/dev/null 2>&1 \
	    && command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
	    && command -v prometheus >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    nginx-light docker-compose chromium chromium-driver prometheus >/dev/null \
	  && { systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true; } \
	  || echo "warning: nginx/docker-compose/chromium/prometheus not installed; their tests will be skipped"; \
	else echo "warning: nginx/docker-compose/chromium/prometheus missing and no root apt; their tests will be skipped"; fi

# podman, debootstrap and docker-compose for the image test (Debian's; root and apt needed)
image-tools:
	@command -v podman >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 && \
	  command -v docker-compose >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      podman debootstrap docker-compose >/dev/null) \
	    || echo "warning: podman/debootstrap not installed; the image test will be skipped"; }

# The models the project ships are in models/ (committed: the embedder, the pair model, the
# verifier); nothing here is needed to run or test. `make models` exports the packaged
# all-MiniLM-L6-v2 weights to ONNX in models/onnx (~15 s, torch): the onnx-fp32 and
# onnx-int8 backends, the parity tests and the model builds below read it.
DATA_DIR ?= ../shared/data
models: install
	$(PY) -m training.onnx_export --if-missing --out models/onnx

# rebuild a shipped model (needs the research data in DATA_DIR, and torch): the embedder
# packed from the export (seconds), the pair model (~35 min on 2 cores: two epochs, then
# packed and its operating point chosen on tune), the verifier (~5 min)
embedder-model: models
	$(PY) -m training.pack_model models/onnx/model.onnx models/embedder --embedder

pair-model: models
	$(PY) -m training.pair_model_train --data $(DATA_DIR) --out models/pair

verifier-model: models
	$(PY) -m training.verifier_train --data $(DATA_DIR) --out models/verifier/verifier.npz

# serves at once with the shipped models (the pair model decides); Ctrl-C stops it
run: install
	@$(PY) -m service

test: install models system-tools
	$(PY) -m pytest -q

# the suite again with every test's Redis a Redis Cluster (3 primaries, a replica each)
test-cluster: install models system-tools
	DYNACACHE_TEST_REDIS=cluster $(PY) -m pytest -q --ignore=tests/test_image.py

# the compose stack: Redis, 3 replicas, nginx on 127.0.0.1:8000; with Docker Compose v2 where
# a Docker engine runs, else with podman (images built locally, health checks run for it)
# PORT (or LB_PORT) chooses the balancer's port; podman and docker-compose are installed
# when missing and apt is usable (root), as for make image-test
PORT ?= $(or $(LB_PORT),8000)
up: image-tools
	$(PYTHON) -m devtools.compose_stack up --port $(PORT)

down:
	$(PYTHON) -m devtools.compose_stack down

# builds the images with podman from local base images (no registry; ~5 min uncached), then
# runs the compose stack: 3 replicas behind nginx, a paraphrase HIT from more than one
image-test: install image-tools
	bash deploy/podman/build_images.sh
	$(PY) -m pytest -q -m image tests/test_image.py

lint: install
	$(VENV)/bin/ruff check service index training devtools tests bench dyna_cache
	$(VENV)/bin/mypy service index training devtools bench dyna_cache

# the wheel and sdist, and the wheel installed in a fresh venv (its dependencies from the index)
package-test: install
	$(PY) -m pytest -q -m package tests/test_package.py

# the documentation site (MkDocs), built strict: a broken link or anchor fails it
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,train,bench]'
	command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || true
	touch $(BENCH_STAMP)

bench-deps: $(BENCH_STAMP)

# every benchmark; each prints its figures and writes bench/results/<name>.json
bench: bench-deps models
	for script in latency throughput scale sync cluster parity peers freshness rag quality; do \
	  $(PY) bench/$$script.py || exit 1; done

# hit quality of the static threshold and the verifier -> bench/results/quality.{json,png}
quality: bench-deps models
	$(PY) bench/quality.py

# real prompts and their variants, look-alike questions -> bench/results/real_prompts.json
# (reads public data snapshots: see bench/prompt_sources.py; not part of `make bench`)
real-prompts: bench-deps models
	$(PY) bench/real_prompts.py --lookalikes

# audited hits on a 20,000-question stream -> bench/results/audit.{json,png} (~15 min), and
# the HIT latency with audits off, at the default share and on every HIT
audit-bench: bench-deps models
	$(PY) bench/audit.py
	$(PY) bench/audit_latency.py

# the library against RedisVL and GPTCache, the HTTP hop, start-up -> bench/results/library.json
library-bench: bench-deps models
	$(PY) bench/library.py

# faults against real processes (Redis killed and frozen, the embedded Redis killed, a
# replica killed behind nginx, cut subscriptions, hostile input with a real upstream, a soak);
# exits 1 when a target is missed (~9 min on 2 cores). Its figures go to a temporary folder,
# or with KEEP=1 to bench/results/chaos.json
chaos: install models system-tools
	$(PY) bench/chaos.py $(if $(KEEP),--keep)

# schemathesis against the service's own OpenAPI schema -> bench/results/fuzz.json
fuzz: bench-deps models
	$(PY) bench/fuzz.py

clean:
	rm -rf $(VENV) data build *.egg-info
