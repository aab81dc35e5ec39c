# Every target creates .venv when it is missing and reinstalls only when pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint unit notebooks book translations bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## demo: train the small CNN on the bundled digits (ImageFolder layout), about a minute on a laptop CPU;
##       each run replaces the last one in runs/demo
demo: install
	$(BIN)/pia image train --out runs/demo --epochs 8 --overwrite

## test: lint + unit tests + every notebook in small mode
test: install lint
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks tools

## book: execute every notebook in full mode (outputs stored in place), write the Chinese notebooks from them
##       and their translations (i18n/zh), then build both sites (site/ and site/zh/)
book: install
	$(BIN)/python tools/nbrun.py --inplace notebooks
	$(BIN)/python tools/i18n.py build
	$(BIN)/python tools/build_site.py

## translations: list the notebook cells whose Chinese translation is missing or stale
translations: install
	$(BIN)/python tools/i18n.py status --cells

## bench: run the speed benchmarks and rewrite their sections of docs/benchmarks.md (the result experiments run by hand)
bench: install
	$(BIN)/python tools/run_benchmarks.py

clean:
	rm -rf site runs .pytest_cache
