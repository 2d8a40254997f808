"""`python -m dbnd_prefect ...` is the `dbnd` command."""

from dbnd_prefect.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
