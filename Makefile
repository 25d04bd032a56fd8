# tritonkit: make repo (set-up + build the model repository), make test, make serve/predict/bench/demo.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TK := $(BIN)/tritonkit
REPO ?= model_repository
MODEL ?= digits
STAMP := $(VENV)/.installed

.PHONY: help setup repo test serve predict bench benchmarks soak demo lint clean

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

test: $(STAMP) ## Run the whole test suite (starts real Triton servers)
	$(BIN)/pytest -q

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

serve: $(STAMP) ## Serve model_repository/ with Triton (container if Docker+GPU, else embedded); Ctrl-C stops
	$(TK) serve --repository $(REPO)

predict: $(STAMP) ## Classify held-out digits through the running server
	$(TK) predict $(MODEL) --digits 20

bench: $(STAMP) ## perf_analyzer against the running server; report under benchmarks/reports/
	$(TK) profile $(MODEL) --report

benchmarks: $(STAMP) ## All figure scripts under benchmarks/ (several minutes; reports in benchmarks/reports/)
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_export.py
	$(BIN)/python benchmarks/bench_validate.py
	$(BIN)/python benchmarks/bench_client.py
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_overload.py

soak: $(STAMP) ## 15-minute soak at 80% of saturation, plus 30 publish crashes
	$(BIN)/python benchmarks/bench_soak.py --minutes 15
	$(BIN)/python benchmarks/bench_soak.py --crash-runs 30

demo: repo ## repo -> start server -> predict -> bench -> stop
	$(TK) serve --repository $(REPO) --detach
	$(TK) predict $(MODEL) --digits 270 || { $(TK) serve stop; exit 1; }
	$(TK) profile $(MODEL) --report || { $(TK) serve stop; exit 1; }
	$(TK) serve stop

clean: ## Remove generated models, runs and caches (keeps .venv)
	rm -rf $(REPO)/*/ build checkpoints runs .tritonkit .$(REPO).staging .$(REPO).lock .$(REPO).trash \
	  .pytest_cache .ruff_cache benchmarks/reports/*/
