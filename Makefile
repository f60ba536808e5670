# The two commands: `make demo` and `make test`. Both set up .venv first.
# The install is skipped while pyproject.toml and requirements/nodeps-*.txt are unchanged
# (stamp keyed by their hash).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
NODEPS := $(wildcard requirements/nodeps-*.txt)
STAMP := $(VENV)/.install-stamp-$(shell cat pyproject.toml $(NODEPS) | sha256sum | cut -c1-16)
DEMO_DIR ?= data/tiny
DEMO_OUT ?= outputs/demo
# Minutes per training stage in the demo (the README's figures use the preset's 25).
DEMO_MINUTES ?= 3
# glibc returning freed memory and re-requesting it made small-model torch
# training 10-13x slower on these machines (DESIGN.md): keep it.
export MALLOC_MMAP_THRESHOLD_ := 33554432
export MALLOC_TRIM_THRESHOLD_ := 68719476736
export MALLOC_TOP_PAD_ := 536870912

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml $(NODEPS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip<26"
	@# torch first, from the local CPU wheel; the project's range keeps it.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Packages whose declared dependencies would pull another torch: no deps.
	$(foreach f,$(NODEPS),$(BIN)/python -m pip install --quiet --no-deps -r $(f);)
	@rm -f $(VENV)/.install-stamp-*
	@touch $@

demo: install
	$(BIN)/dubops data synth --preset tiny --out $(DEMO_DIR)
	$(BIN)/dubops data validate $(DEMO_DIR)
	$(BIN)/dubops data report $(DEMO_DIR) --preset tiny
	$(BIN)/dubops train dit-pretrain --data $(DEMO_DIR) --out $(DEMO_OUT)/dit_pretrain \
		--max-minutes $(DEMO_MINUTES)
	$(BIN)/dubops train controlnet --data $(DEMO_DIR) --pretrained $(DEMO_OUT)/dit_pretrain \
		--out $(DEMO_OUT)/controlnet --max-minutes $(DEMO_MINUTES)
	$(BIN)/dubops train reasoner-sft --data $(DEMO_DIR) --out $(DEMO_OUT)/reasoner_sft \
		--max-minutes $(DEMO_MINUTES)
	$(BIN)/dubops train reasoner-mpo --data $(DEMO_DIR) --sft $(DEMO_OUT)/reasoner_sft \
		--out $(DEMO_OUT)/reasoner_mpo --max-minutes $(DEMO_MINUTES)
	$(BIN)/dubops reason --model $(DEMO_OUT)/reasoner_mpo --data $(DEMO_DIR) --split test_s2 \
		--max-clips 4 --out $(DEMO_OUT)/reasoning.jsonl
	$(BIN)/dubops train extractors --data $(DEMO_DIR) --out $(DEMO_OUT)/extractors
	$(BIN)/dubops library build --data $(DEMO_DIR) --extractors $(DEMO_OUT)/extractors \
		--out $(DEMO_OUT)/library
	$(BIN)/dubops library evaluate --library $(DEMO_OUT)/library --max-k 3
	$(BIN)/dubops train graph --data $(DEMO_DIR) --controlnet $(DEMO_OUT)/controlnet \
		--library $(DEMO_OUT)/library --out $(DEMO_OUT)/graph --max-minutes $(DEMO_MINUTES)
	rm -rf $(DEMO_OUT)/dubbed
	$(BIN)/dubops dub --model $(DEMO_OUT)/graph --library $(DEMO_OUT)/library --data $(DEMO_DIR) \
		--split test_s2 --max-clips 4 --out $(DEMO_OUT)/dubbed

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
