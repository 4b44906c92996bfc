# Two commands: `make run` (everything, from a fresh clone) and `make test`.
# `make run QUICK=1` runs the whole pipeline on a small subset into runs/quick/.
# Also: data, report, bench, lint, predict (IMAGES="a.jpg b.png"), clean. The experiments beyond
# the course (sweeps, GPU runs, robustness) have their own Makefile: `make -C experiments`.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
QUICK  ?= 0
export QUICK

ifeq ($(QUICK),1)
OUT := runs/quick
else
OUT := runs/full
endif

MODELS := cnn-by-myself cnn-by-pytorch

.PHONY: run test venv data notebooks report bench lint predict clean

run: venv data notebooks report
	@echo "make run: done ($(if $(filter 1,$(QUICK)),quick run in $(OUT)/,full run))."

test: venv
	$(BIN)/python -m pytest

venv: $(VENV)/.installed

# Re-installs only when a requirements file or pyproject.toml changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

data: venv
	$(BIN)/python -m fashion_mnist.data --dest data

# Each notebook runs headless in its own folder; the executed copy goes to $(OUT)/notebooks/.
notebooks: venv data
	@for m in $(MODELS); do \
	  if [ -f $$m/demo.ipynb ]; then \
	    echo "== executing $$m/demo.ipynb (QUICK=$(QUICK))"; \
	    $(BIN)/jupyter nbconvert --to notebook --execute $$m/demo.ipynb \
	      --ExecutePreprocessor.timeout=-1 --output-dir $(OUT)/notebooks --output $$m.ipynb || exit 1; \
	  else \
	    echo "== $$m/demo.ipynb is not there yet: skipped"; \
	  fi; \
	done

report: venv
	@if [ -f report/build_report.py ]; then \
	  $(BIN)/python report/build_report.py $(if $(filter 1,$(QUICK)),--quick); \
	else \
	  echo "== report/build_report.py is not there yet: no report built"; \
	fi

bench: venv
	$(BIN)/python benchmarks/bench_lenet.py --record benchmarks/bench_lenet.json
	$(BIN)/python benchmarks/bench_lenet.py --profile --record benchmarks/bench_layers.json
	$(BIN)/python benchmarks/bench_epoch.py --record benchmarks/bench_epoch.json

lint: venv
	$(BIN)/ruff check .

# Classify your own images with the models of the last full run: make predict IMAGES="shirt.jpg".
predict: venv
	@test -n "$(IMAGES)" || { echo 'usage: make predict IMAGES="photo.jpg [more.png ...]"'; exit 2; }
	$(BIN)/python -m fashion_mnist.predict $(IMAGES)

# Removes what quick runs and the tools generate; never a full run's results or the data.
clean:
	rm -rf runs/quick .pytest_cache .ruff_cache .hypothesis
