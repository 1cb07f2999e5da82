# `make run`: set up .venv if needed, run the demo pipeline. `make test`: set up, run all tests.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= all
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test bench study study-farms backbone mutation lint report clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	@echo "installing bgshift into $(VENV) (torch pinned by constraints.txt) ..."
	@$(PYTHON) -m pip install --quiet -c constraints.txt -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
	@$(PYTHON) -c "import bgshift, torch, torchvision.ops, ultralytics, snakemake" || (echo "install failed"; exit 1)
	@touch $(STAMP)

# Rerunning after a crash resumes (profiles/default; the Snakefile clears a killed run's lock, never a live run's).
run: $(STAMP)
	snakemake --cores $(CORES)
	snakemake --cores $(CORES) --report results/report.html

# `make report CONFIG=my_study.yaml`: that config's tables, plots, findings and Snakemake report from
# its stored evaluations; only these rules may run, so nothing is trained, detected or scored.
CONFIG ?= config/config.yaml
REPORT_RULES := results report_tables plots findings results_page
report: $(STAMP)
	snakemake --cores $(CORES) --configfile '$(CONFIG)' --allowed-rules $(REPORT_RULES) -- results
	snakemake --cores $(CORES) --configfile '$(CONFIG)' --report "$$($(PYTHON) -c 'import sys; from bgshift import config; print(config.load(sys.argv[1])["results"])' '$(CONFIG)')/report.html"

test: $(STAMP)
	$(PYTHON) -m pytest -ra $(PYTEST_ARGS)

# The findings at CPU scale (docs/findings.md): four synthetic worlds (YOLO, RetinaNet, a ResNet-18
# classifier, Faster R-CNN beside a labelled context class), seeds per world in each config; each
# config declares its claims, and one findings run judges all 26 together (results/study/findings.md). The farms world's finding (b) needs detectors
# that transfer to its unseen farm, which CPU training does not reach (config/study/farms.yaml):
# `make study-farms` runs it and judges its 6 claims on their own (a GPU run).
study: $(STAMP)
	snakemake --cores $(CORES) --configfile config/study/lab.yaml
	snakemake --cores $(CORES) --configfile config/study/brl.yaml
	snakemake --cores $(CORES) --configfile config/study/classify.yaml
	snakemake --cores $(CORES) --configfile config/study/context.yaml
	bgshift findings --configs config/study/lab.yaml config/study/brl.yaml config/study/classify.yaml config/study/context.yaml --out results/study

study-farms: $(STAMP)
	snakemake --cores $(CORES) --configfile config/study/farms.yaml

# The ResNet-18 body the BRL world starts from (docs/brl.md): a RetinaNet trained on a separate synthetic world.
BACKBONE_RUN := results/pretrain/resnet18/train/retinanet_pretrain/original/seed0
backbone: $(STAMP)
	snakemake --cores $(CORES) --configfile config/pretrain/resnet18_synthetic.yaml
	bgshift backbone --checkpoint $(BACKBONE_RUN)/best.pt --out results/pretrain/resnet18_synthetic.pt
	cp results/pretrain/resnet18_synthetic.pt resources/weights/resnet18_synthetic.pt

# `make bench BENCH=variants SIZES=1920x1080 SHARD=64 WORLD=4`: one bench, one image size, a 64-image
# shard of a 4-shard world (default: all benches, three sizes, a world of one 24-image shard).
BENCH ?=
SIZES ?= 640x480,1280x720,1920x1080
SHARD ?= 24
WORLD ?= 1
bench: $(STAMP)
	$(PYTHON) benchmarks/run.py $(BENCH) --sizes $(SIZES) --shard-images $(SHARD) --world-shards $(WORLD)

# Mutation testing of drops, sets, evaluate, splits and the variant catalog (docs/testing.md); not CI.
mutation: $(STAMP)
	$(PYTHON) -m pip install --quiet -c constraints.txt -e '.[test,mutation]' 2>&1 | grep -v '^WARNING: Location' || true
	$(PYTHON) scripts/mutation.py

lint: $(STAMP)
	snakemake --lint

clean:
	rm -rf results .snakemake .mutation
