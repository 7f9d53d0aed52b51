# scalemix: `make setup` once, then `make demo` (sweep -> fit -> report) and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
TORCH_CPU ?= torch==2.13.0
SWEEP ?= demo

.PHONY: setup test test-fast demo data lint bench clean mixture-confirm mixture-study

# On a machine without CUDA, install the pinned CPU torch first, so that nothing later
# resolves an unpinned `torch` to a multi-GB CUDA build.
setup:
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "CUDA found: keeping/installing a CUDA torch"; \
	else \
		$(PIP) install -q "$(TORCH_CPU)"; \
	fi
	$(PIP) install -q -e ".[dev]"

# One pytest worker per core, at most 4 (pytest-xdist): each test file stays on one worker (--dist loadfile), so
# a module's fixtures are built once; TEST_WORKERS=0 runs in this process alone.
# pytest exits 5 when it collected no tests: that is a failure, not a pass.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
PYTEST = $(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile
test:
	@$(PYTEST); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-fast:
	$(PYTEST) -m "not slow and not slurm"

data:
	$(PYTHON) -m harness.data.prepare

# Confirm a mixture sweep's recommendation: fit its law, train the recommended, uniform and natural mixtures
# (and a two-stage curriculum) at MIX_FACTOR x its D with 2 seeds, then compare predicted with measured.
#   make mixture-confirm MIX=mixture [MIX_ALSO="runs/other_sweep"] [MIX_FACTOR=4] [MIX_ARGS="scale.mixture_depth=2"]
MIX ?= mixture
MIX_FACTOR ?= 4
mixture-confirm:
	$(PYTHON) -m analysis.mixing_report runs/$(MIX) $(if $(MIX_ALSO),--also $(MIX_ALSO)) \
		--tokens-factor $(MIX_FACTOR) --sweep-args "$(MIX_ARGS)"
	PYTHON=$(PYTHON) sh runs/$(MIX)/confirm.sh

# Mixing laws across sizes, end to end on CPU (bench/cpu_mixing_study.sh): the fit sweep over depths x token counts
# (+grid=mixture_sizes) and seed replicates, the size law's recommendation at a larger size, its confirmation
# (recommended, uniform, natural; 3 seeds) and the report; packed into $(MIX_OUT)/mixing.tgz. TOY=1: tiny budgets.
#   make mixture-study [MIX_JOBS=14] [TOY=1] [MIX_OUT=out]
MIX_JOBS ?= 14
MIX_OUT ?= out
mixture-study:
	PYTHON=$(PYTHON) TOY=$(or $(TOY),0) JOBS=$(MIX_JOBS) OUT=$(MIX_OUT) bash bench/cpu_mixing_study.sh

# prepare returns at once when data/demo is built from the current recipe (and rebuilds one from an older recipe).
# The report starts beside the sweep and waits for its exit status on stdin (the sweep's own output goes to stderr,
# i.e. to the terminal as before): its start-up runs while the sweep's start-up leaves a core idle, instead of after
# the last run; a failed sweep gets no report and `make demo` fails with its status (bench/README.md, "make demo in
# five minutes").
demo:
	$(PYTHON) -m harness.data.prepare corpus=demo
	{ $(PYTHON) sweep.py +grid=$(SWEEP) 1>&2; echo $$?; } | $(PYTHON) -m analysis.report runs/$(SWEEP) --status-on-stdin

lint:
	$(PYTHON) -m ruff check .

bench:
	$(PYTHON) bench/throughput.py --device cpu

clean:
	rm -rf runs outputs multirun .pytest_cache
