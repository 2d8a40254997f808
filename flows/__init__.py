"""Runnable example pipelines: `python flows/<file>.py` or `dbnd run <name>`."""
