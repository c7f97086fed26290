# make test : create .venv if missing, install the project with its test and dali extras, run pytest
# make demo : the main job: a preview GIF of every transform + clips/s (python -m pmg_dali demo),
#             then a short data-free VideoMAE pre-training (examples/videomae/pretrain.py --demo=True)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch 2.14.1 + torchvision 0.29.1 come from local disk on our CI machines; elsewhere any torch>=2.5.
$(STAMP): setup.py | $(BIN)/python
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1 || $(BIN)/pip install -q "torch>=2.5" torchvision
	$(BIN)/pip install -q -e ".[test,dali]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

demo: $(STAMP)
	$(BIN)/python -m pmg_dali demo --out_dir=out/demo
	$(BIN)/python examples/videomae/pretrain.py --demo=True --out_dir=out/demo

bench: $(STAMP)
	$(BIN)/python -m pmg_dali bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
