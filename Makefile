# The two commands: `make demo` (the main job) and `make test`. Both set up everything themselves.
PY        ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
# Data root: override with `make demo BREGMAN_DATA=/path/to/data`.
BREGMAN_DATA ?= $(CURDIR)/.data
export BREGMAN_DATA

.PHONY: venv data test demo bench clean

venv: $(VENV)/.stamp

$(VENV)/.stamp: requirements-dev.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

data: venv
	$(BIN)/bregman data fetch mnist

test: venv data
	$(BIN)/python -m pytest -q

demo: venv data
	$(BIN)/bregman train mnist-mlp --set epochs=10 --set progress=off --out runs/demo --resume --label "LinBreg λ=0.1 (demo)"
	$(BIN)/bregman report runs/demo --out runs/demo/report

bench: venv data
	$(BIN)/python benchmarks/optimizer_step.py
	$(BIN)/python benchmarks/epoch_time.py
	$(BIN)/python benchmarks/training_speed.py

clean:
	rm -rf $(VENV) runs .pytest_cache
