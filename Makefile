# make test : create .venv if missing, install the project with its test, dali and examples extras,
#             lint (ruff check .), run pytest
# make lint : ruff check . alone
# make demo : the main job: a preview GIF of every transform + clips/s (python -m pmg_dali demo),
#             then a short data-free VideoMAE pre-training (examples/videomae/pretrain.py --demo=True)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch 2.14.1 + torchvision 0.29.1 (the tested pair) first; where they cannot be had, any torch>=2.5.
$(STAMP): setup.py | $(BIN)/python
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1 || $(BIN)/pip install -q "torch>=2.5" torchvision
	$(BIN)/pip install -q -e ".[test,dali,examples]"
	touch $(STAMP)

test: lint
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP)
	$(BIN)/python -m pmg_dali demo --out_dir=out/demo
	$(BIN)/python examples/videomae/pretrain.py --demo=True --out_dir=out/demo

bench: $(STAMP)
	$(BIN)/python -m pmg_dali bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
