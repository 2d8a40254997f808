PYTHON ?= .venv/bin/python

.PHONY: bench bench-quick

# dbnd_prefect vs raw Prefect on one local Prefect server; writes bench/results/latest.md
bench:
	$(PYTHON) bench/run.py $(BENCH_ARGS)

# the same suite with tiny sizes and one run each (what tests/test_bench_smoke.py runs)
bench-quick:
	$(PYTHON) bench/run.py --quick $(BENCH_ARGS)
