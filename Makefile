# Two commands: `make run` (everything, from a fresh clone) and `make test`.
# `make run QUICK=1` runs the whole pipeline on a small subset into runs/quick/.

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

.PHONY: run test venv data notebooks report ablation seeds init-seeds all-data resnet gpu bench lint clean-quick

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

# The ablation table (each improvement alone, a few epochs each: about half an hour on 2 cores);
# the PyTorch notebook reads the recorded cnn-by-pytorch/ablation.json.
ablation: venv data
	cd cnn-by-pytorch && ../$(BIN)/python torch_run.py ablation

# The reproduction again with seeds 1-3 (about 35 minutes on 2 cores), beside the notebook's
# seed 0: cnn-by-pytorch/seeds/reproduction_seedN.json.
seeds: venv data
	cd cnn-by-pytorch && for seed in 1 2 3; do \
	  ../$(BIN)/python torch_run.py reproduction --set seed=$$seed --name reproduction_seed$$seed \
	    --out seeds || exit 1; \
	done

# The reproduction over seeds 0-3 with each initialisation in INITS, validation held out as in the
# notebook (about 45 minutes an initialisation on 2 cores): cnn-by-pytorch/init_seeds/NAME.json,
# beside the GPU runs over seeds. By default init=as_marked, the original's layer table read to
# the letter (see torch_cnn.build_model): he_xavier is the preset (make seeds), and make gpu
# trains he_xavier and pytorch.
init-seeds: INITS ?= as_marked
init-seeds: venv data
	cd cnn-by-pytorch && for init in $(INITS); do for seed in 0 1 2 3; do \
	  ../$(BIN)/python torch_run.py reproduction --set init=$$init --set seed=$$seed \
	    --name $${init}_seed$$seed --out init_seeds || exit 1; \
	done; done

# The reproduction trained as the original was, over seeds 0-3 with each initialisation in INITS
# (about an hour an initialisation on 2 cores, e.g. make all-data INITS=as_marked): on all 60,000
# training images, so no validation to select on and the last epoch kept:
# cnn-by-pytorch/all_data/NAME.json, beside the GPU runs over seeds.
all-data: INITS ?= he_xavier as_marked pytorch
all-data: venv data
	cd cnn-by-pytorch && for init in $(INITS); do for seed in 0 1 2 3; do \
	  ../$(BIN)/python torch_run.py reproduction --set hold_out_validation=false --set init=$$init \
	    --set seed=$$seed --name all_data_$${init}_seed$$seed --out all_data || exit 1; \
	done; done

# The small ResNet: wants a GPU (about 3 s an epoch on an H200); writes cnn-by-pytorch/resnet.json.
resnet: venv data
	cd cnn-by-pytorch && ../$(BIN)/python torch_run.py resnet

# The GPU runs in one go, about 9 minutes on an H200 (the reproduction timed alone as a CUDA graph,
# the reproduction over seeds with two initialisations, two graphed ResNet variants):
# gpu/NAME.json and gpu_seeds/NAME.json in cnn-by-pytorch/.
gpu: venv data
	PYTHON=$(abspath $(BIN)/python) bash cnn-by-pytorch/gpu_runs.sh cnn-by-pytorch

bench: venv
	$(BIN)/python benchmarks/bench_lenet.py --record benchmarks/bench_lenet.json
	$(BIN)/python benchmarks/bench_malloc.py --record benchmarks/bench_malloc.json
	$(BIN)/python benchmarks/bench_epoch.py --record benchmarks/bench_epoch.json

lint: venv
	$(BIN)/ruff check .

clean-quick:
	rm -rf runs/quick
