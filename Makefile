PYTHON ?= .venv/bin/python

.PHONY: bench bench-quick bench-dbnd-venv bench-profile

# dbnd_prefect vs raw Prefect on one local Prefect server, and `dbnd run`/`plan` vs the original DBND 1.0.34;
# writes bench/results/latest.md
bench:
	$(PYTHON) bench/run.py $(BENCH_ARGS)

# the same suite with tiny sizes and one run each (what tests/test_bench_smoke.py runs)
bench-quick:
	$(PYTHON) bench/run.py --quick $(BENCH_ARGS)

# the original DBND 1.0.34 in .cache/bench-dbnd-venv (the suite installs it on first use; a no-op when there)
bench-dbnd-venv:
	$(PYTHON) bench/dbnd_venv.py

# where a pipeline's per-task time goes: py-spy samples of a versioned 100-task chain and 200 independent tasks
bench-profile:
	$(PYTHON) bench/profile_tasks.py $(BENCH_ARGS)
