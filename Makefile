# The two commands: `make demo` and `make test`. Both set up .venv first.
# The install is skipped while pyproject.toml and requirements/nodeps-*.txt are unchanged
# (stamp keyed by their hash).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
NODEPS := $(wildcard requirements/nodeps-*.txt)
TOOLS := requirements/tools-checkov.txt
STAMP := $(VENV)/.install-stamp-$(shell cat pyproject.toml $(NODEPS) $(TOOLS) | sha256sum | cut -c1-16)
DEMO_DIR ?= data/tiny
DEMO_OUT ?= outputs/demo
# The tiny preset with budgets in updates, the speech stages fine-tuned from the shipped
# base in models/tiny/ (configs/demo.yaml); the figures in docs/results use the preset's own.
DEMO_CONFIG ?= configs/demo.yaml
# A held-out (test_s2: unseen speaker) clip of the tiny corpus.
DEMO_CLIP ?= syn00_00004
# glibc returning freed memory and re-requesting it made small-model torch
# training 10-13x slower on these machines (DESIGN.md): keep it.
export MALLOC_MMAP_THRESHOLD_ := 33554432
export MALLOC_TRIM_THRESHOLD_ := 68719476736
export MALLOC_TOP_PAD_ := 536870912

.PHONY: install demo serve test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml $(NODEPS) $(TOOLS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip<26"
	@# torch first, from the local CPU wheel; the project's range keeps it. The images set
	@# TORCH_INDEX (PyTorch's cpu or cu128 wheel index: infra/docker/Dockerfile).
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e '.[dev,serving,monitoring]'
	@# Packages whose declared dependencies would pull another torch: no deps.
	$(foreach f,$(NODEPS),$(BIN)/python -m pip install --quiet --no-deps -r $(f);)
	@# checkov (policy checks of infra/) pins packages ours must not move to: its own venv.
	@# The images skip it (INFRA_TOOLS=0): they check nothing.
	$(if $(filter 0,$(INFRA_TOOLS)),,@test -x $(VENV)/tools/checkov/bin/python || \
		$(BIN)/python -m venv $(VENV)/tools/checkov)
	$(if $(filter 0,$(INFRA_TOOLS)),,$(VENV)/tools/checkov/bin/python -m pip install --quiet \
		--only-binary=:all: -r $(TOOLS))
	@rm -f $(VENV)/.install-stamp-*
	@touch $@

demo: install
	$(BIN)/dubops data synth --preset tiny --out $(DEMO_DIR)
	$(BIN)/dubops pipeline run --preset tiny --config $(DEMO_CONFIG) --data $(DEMO_DIR) \
		--out $(DEMO_OUT)/pipeline
	@# Should the gate refuse the model, the challenger dubs, and says so.
	@if $(BIN)/dubops registry show champion --json > /dev/null 2>&1; then alias=champion; \
	else alias=challenger; echo "no champion: the gate refused this run's model (see the"\
		"pipeline's gate table); dubbing with the challenger"; fi; \
	$(BIN)/dubops dub-clip --model models:/dubbing@$$alias --clip $(DEMO_CLIP) --data $(DEMO_DIR) \
		--out out/demo.mp4 --no-mos && \
	$(BIN)/dubops serve try --model models:/dubbing@$$alias --clip $(DEMO_CLIP) --data $(DEMO_DIR) \
		--out out/served && \
	$(BIN)/dubops data scene --data $(DEMO_DIR) --split test_s1 --seconds 30 --out out/scene && \
	$(BIN)/dubops dub-video out/scene/scene.mp4 --subtitles out/scene/scene.srt \
		--voices-dir out/scene/voices --model models:/dubbing@$$alias --out out/scene_dub.mp4
	@echo "Dubbed: out/demo.mp4 (reasoning: out/demo.reasoning.txt, metrics: out/demo.json)"
	@echo "Served: out/served/ (the same clip through BentoML's HTTP API: sync and as a job)"
	@echo "Scene: out/scene_dub.mp4 (a 30 s scene of three speakers, line by line: out/scene_dub.json)"
	@echo "MLflow UI: $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns.db" \
		"--default-artifact-root $(CURDIR)/mlartifacts  (then open http://127.0.0.1:5000)"

# The champion behind BentoML on 127.0.0.1 until Ctrl-C (which drains it).
SERVE_PORT ?= 3000
serve: install
	@echo "DubOps API: http://127.0.0.1:$(SERVE_PORT)  (POST /dub, /jobs; docs: /docs;" \
		"review page: /review)"
	$(BIN)/dubops serve bento --model models:/dubbing@champion --port $(SERVE_PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/bench_corpus_generation.py
	$(BIN)/python benchmarks/reasoner.py --data $(DEMO_DIR)

clean:
	rm -rf $(VENV) mlruns mlruns.db mlartifacts outputs
