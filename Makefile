# The two commands a newcomer needs: `make demo` (main job) and `make test` (test suite).
VENV ?= .venv
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test test-fast lint compile clean

setup:            ## system packages + venv + pinned stack (idempotent)
	VENV=$(VENV) bash infra/setup.sh

demo: setup       ## the whole pipeline locally with kfp.local, then a summary
	$(VENV)/bin/omni demo

# Two xdist workers, one test file each at a time (so a module's fixtures, such as the e2e pipeline, run once):
# measured in a fresh clone on the 2-core machine: 16 min 36 s on one worker (1.3 cores busy: servers and
# subprocesses starting), 8 to 10 min on two before the deploy tests, 11 min 29 s with them (README, "What to expect").
PYTEST_WORKERS ?= -n 2 --dist loadfile

test: setup lint  ## lint, then the whole suite, including the end-to-end pipeline test
	$(VENV)/bin/python -m pytest -q $(PYTEST_WORKERS)

lint: setup       ## ruff lint and format check (rules in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-fast: setup  ## everything but the end-to-end pipeline run
	$(VENV)/bin/python -m pytest -q $(PYTEST_WORKERS) -m "not e2e"

compile: setup    ## KFP IR YAML for a cluster
	$(VENV)/bin/omni pipeline compile --out pipeline.yaml

clean:
	rm -rf data .pytest_cache
