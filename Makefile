# tritonkit: make repo (set-up + build the model repository), make test, make serve/predict/bench/demo.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TK := $(BIN)/tritonkit
REPO ?= model_repository
MODEL ?= digits
# PORT=N: `make serve` listens on HTTP N, gRPC N+1, metrics N+2 (Triton's 8000/8001/8002 layout);
# predict and bench dial gRPC N+1. URL=host:port names the gRPC endpoint predict and bench dial.
# With neither, predict and bench dial the server `tritonkit serve` recorded, whatever its ports.
PORT ?=
URL ?=
# bench: where reports go, and extra `tritonkit profile` options (e.g. BENCH_ARGS="--concurrency 1,2 --batch 1").
REPORTS ?= benchmarks/reports
BENCH_ARGS ?=
SERVE_PORTS := $(if $(PORT),--http-port $(PORT) --grpc-port $(shell echo $$(($(PORT)+1))) \
  --metrics-port $(shell echo $$(($(PORT)+2))))
DIAL := $(if $(URL),--url $(URL),$(if $(PORT),--url 127.0.0.1:$(shell echo $$(($(PORT)+1)))))
STAMP := $(VENV)/.installed
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: help setup repo image test serve predict bench benchmarks soak demo lint clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml scripts/setup-system.sh
	@PYTHON=$(PYTHON) bash scripts/setup-system.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv, install tritonkit and the system library perf_analyzer needs

repo: $(STAMP) ## Set up, train the default model if needed, export ONNX, publish to model_repository/
	$(TK) pipeline --repository $(REPO)

image: $(STAMP) ## Build the CPU stand-in for NVIDIA's Triton image with podman (root; reused while unchanged)
	@bash scripts/setup-containers.sh
	$(TK) image build

# As root, the container tests' engine is set up first (podman, runc, debootstrap, containers.conf) and the
# stand-in image is built in the background while the other tests run (log: build/image-build.log); the
# container tests' fixture waits for that build (an inter-process lock) instead of starting another.
test: $(STAMP) ## Run the whole test suite (starts real Triton servers) [JOBS=N workers, default: CPU count]
	@bash scripts/setup-containers.sh
	@bash scripts/setup-test-tools.sh
	@if [ "$$(id -u)" = 0 ] && command -v podman >/dev/null && command -v debootstrap >/dev/null; then \
	  mkdir -p build; $(TK) image build >build/image-build.log 2>&1 & fi; \
	$(BIN)/pytest -q -n $(JOBS) --dist loadfile; rc=$$?; wait; exit $$rc

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

serve: $(STAMP) ## Serve model_repository/ with Triton (container if Docker+GPU, else embedded); Ctrl-C stops [PORT=8000]
	$(TK) serve --repository $(REPO) $(SERVE_PORTS)

predict: $(STAMP) ## Classify held-out digits through the running server [URL=host:port or PORT=8000]
	$(TK) predict $(MODEL) --digits 20 $(DIAL)

bench: $(STAMP) ## perf_analyzer against the running server; report under benchmarks/reports/ [URL= or PORT=]
	$(TK) profile $(MODEL) --report --repository $(REPO) --out $(REPORTS) $(DIAL) $(BENCH_ARGS)

benchmarks: $(STAMP) ## All figure scripts under benchmarks/ (several minutes; reports in benchmarks/reports/)
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_export.py
	$(BIN)/python benchmarks/bench_validate.py
	$(BIN)/python benchmarks/bench_client.py
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_overload.py
	$(BIN)/python benchmarks/bench_container.py
	$(BIN)/python benchmarks/bench_replicas.py
	$(BIN)/python benchmarks/bench_s3_publish.py

soak: $(STAMP) ## 15-minute soak at 80% of saturation, plus 30 publish crashes
	$(BIN)/python benchmarks/bench_soak.py --minutes 15
	$(BIN)/python benchmarks/bench_soak.py --crash-runs 30

demo: repo ## repo -> start server -> predict -> bench -> stop [PORT=8000]
	$(TK) serve --repository $(REPO) --detach $(SERVE_PORTS)
	$(TK) predict $(MODEL) --digits all $(DIAL) || { $(TK) serve stop --repository $(REPO); exit 1; }
	$(TK) profile $(MODEL) --report --repository $(REPO) --out $(REPORTS) $(DIAL) $(BENCH_ARGS) || { $(TK) serve stop --repository $(REPO); exit 1; }
	$(TK) serve stop --repository $(REPO)

clean: ## Remove generated models, runs and caches (keeps .venv)
	rm -rf $(REPO)/*/ build checkpoints runs .tritonkit .$(REPO).staging .$(REPO).lock .$(REPO).trash \
	  .pytest_cache .ruff_cache benchmarks/reports/*/
