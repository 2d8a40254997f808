"""The `dbnd` command line.

    dbnd run TASK [--set K=V]... [--override K=V]... [--env NAME] [--conf-file PATH]...
                  [--task-version V] [--describe] [--verbose] [-m MODULE]...
    dbnd run TASK --help          the task's parameters: type, default, configured value and its source
    dbnd plan TASK [--set K=V]... per task: hit / miss / stale and why; nothing runs (= dbnd run --describe)
    dbnd versions TASK [OUTPUT]   stored versions of TASK's outputs: time, signature, flow run, size, parameters
    dbnd reproduce RUN_ID         re-run a recorded flow run's tasks; exit 0 when every output checksum matches
    dbnd show-tasks               discoverable tasks and pipelines with their signatures
    dbnd show-config              every configured value with the layer and file/line that set it
    dbnd config explain KEY       one value, where it came from and what it overrode
    dbnd server [status|start|stop]  the local Prefect server that runs share (see run.api)

TASK is a name from the modules listed in `[run] modules` or given with `-m`, a dotted path
`pkg.mod.func`, or `path/to/file.py:func`. `--set task.param=value` (or JSON:
`--set '{"task.param": 1}'`); a key without a dot names a parameter of TASK itself. A data
parameter also takes a stored version: `--set train_model.training_set=split_data.training_set@latest`
or `...@run:FLOW_RUN_ID` (see `dbnd versions split_data`).

Where a parameter's value comes from — the precedence rule, highest first:

    --override TASK.PARAM=V     beats everything, even an argument the pipeline passes explicitly
    call-site argument          what the calling code passes explicitly (`train_model(data, alpha=0.1)`)
    --set TASK.PARAM=V          fills only what the caller did not pass (later --set beats earlier)
    DBND__TASK__PARAM=V         environment variables
    --conf-file PATH            TOML files, later beats earlier
    project configuration       dbnd.toml, then [tool.dbnd] in pyproject.toml (nearest directory up)
    parameter default           the default in the function signature (then library defaults)

So `--set` is a default you give from outside (the DBND rule: explicit code wins), and
`--override` is how you force a value the code passes. `dbnd config explain TASK.PARAM` shows
which layer won. Input mistakes exit with code 2 and one line on stderr before anything runs;
bad input data found only when a task loads it (a file that does not parse, an empty file, a
directory) also exits with code 2, naming the task, the parameter and the URI; a task whose own
code fails exits with code 1 and names the task. `--verbose` adds tracebacks and Prefect's own
failure reports. A usage mistake (an unknown option or command, a missing argument) is one line
`dbnd: error: ...` with exit code 2 as well. Ctrl-C (or SIGTERM) during a run stops it: no further task
starts, its flow run is marked Cancelled on the Prefect server, and `dbnd` exits with 130 (143) after one line
`dbnd: interrupted: flow run NAME cancelled`; a second Ctrl-C exits at once.

On a terminal, `dbnd plan` (and `run --describe`), `dbnd versions`, `dbnd show-config` and the
end-of-run summary are tables, and a run shows its task runs (done, running, reused, failed) live
on stderr. Without a terminal (pipes, files, CI, tests) the same facts are plain lines, one fact
per line, for grep.

The commands and their options are declared with cyclopts in `dbnd_prefect.cli.app`; what each
command does is in `dbnd_prefect.cli.commands`, the plain lines in `text`, the tables in `tables`.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Any, Sequence

from dbnd_prefect.errors import ConfigError, DbndError

__all__ = ["main", "build_app"]


def build_app(for_help: bool = True) -> Any:
    """The `dbnd` cyclopts App; `for_help`: its help laid out for where stdout goes (panels on a terminal,
    plain text elsewhere)."""
    from dbnd_prefect.cli.app import app
    from dbnd_prefect.cli.output import is_terminal

    if not for_help:  # the help formatter and its console are imported only to print help
        return app
    if is_terminal():
        app.help_formatter, app.console = "default", None
    else:  # one line per entry, not wrapped at 80 columns: greppable
        from rich.console import Console

        app.help_formatter, app.console = "plain", Console(soft_wrap=True, width=200)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Run `dbnd` with `argv` (default: the process arguments); the exit code."""
    from dbnd_prefect.runtime.console import quiet_drain_notes, quiet_server_settings

    argv_given = argv
    if argv is None:  # the `dbnd` process itself
        import atexit
        import gc

        # Registered first, so it runs last: teardown then skips the collector's walk over every Prefect
        # and pydantic object (about 0.9 s per run measured); objects are still freed by reference counting.
        atexit.register(gc.freeze)
        quiet_drain_notes()
        from dbnd_prefect.spark import quiet_pyspark

        quiet_pyspark()  # pyspark warns about pandas 3 whenever something imports it (pandera does, when installed)
        from dbnd_prefect.cli import help_cache

        help_cache.enabled = True  # `dbnd run TASK --help` may reuse the text an identical call printed
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    quiet_server_settings()  # before any Prefect server this process may start
    levels = {name: logging.getLogger(name).level for name in ("prefect", "dbnd_prefect")}
    try:
        command, args, kwargs = _parse(argv)
        if getattr(kwargs.get("options"), "verbose", False) or kwargs.get("verbose"):
            for name in levels:
                logging.getLogger(name).setLevel(logging.DEBUG)
        _check_prefect_toml()
        code = command(*args, **kwargs)
        if argv_given is None:
            _drain_prefect_events()  # nothing left for Prefect's exit-time drain to note after our output
        return 2 if not argv else int(code or 0)  # bare `dbnd` prints the help, as a usage mistake
    except DbndError as exc:
        if argv_given is None:
            _drain_prefect_events()  # Prefect's exit-time warnings would otherwise follow our line
        from dbnd_prefect.redaction import redact  # a message may quote a value with credentials in it

        if verbose:
            print(redact(traceback.format_exc()), end="", file=sys.stderr)
        print(f"dbnd: error: {redact(_one_line(str(exc)))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: a run's flow run is cancelled on the server (RunInterrupted)
        line = exc.line() if hasattr(exc, "line") else "interrupted"
        code = int(getattr(exc, "exit_code", 130))
        print(f"dbnd: {line}", file=sys.stderr)
        if argv_given is None:
            # a task body may still run in a thread, which Python would wait for at exit: the process ends now
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    finally:
        if argv_given is not None:  # called in process (tests, the pytest plugin): --verbose ends with the call
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def _parse(argv: list[str]) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """The command function `argv` chooses and its arguments; a usage mistake is a ConfigError."""
    from cyclopts import CycloptsError, UnknownCommandError, UnusedCliTokensError

    app = build_app(for_help=not argv or "--help" in argv or "-h" in argv)
    try:
        command, bound, ignored = app.parse_args(argv, print_error=False, exit_on_error=False)
    except CycloptsError as exc:
        prog = " ".join(["dbnd", *(getattr(exc, "command_chain", None) or ())])
        message = _one_line(str(exc)).rstrip(".")
        if isinstance(exc, UnknownCommandError) and exc.unused_tokens:
            raise _unknown_command(str(exc.unused_tokens[0]), getattr(exc, "app", None) or app, prog) from None
        if isinstance(exc, UnusedCliTokensError):
            message = f"unexpected argument(s): {' '.join(exc.unused_tokens)}"
        raise ConfigError(f"{prog}: {message}", hint=f"see {prog} --help") from None
    kwargs = dict(bound.kwargs)
    if "argv" in ignored:
        kwargs["argv"] = tuple(argv)
    return command, tuple(bound.args), kwargs


def _check_prefect_toml() -> None:
    """ConfigError naming file, line and column for a TOML syntax error in the working directory's
    pyproject.toml or prefect.toml, which Prefect reads when imported (failing with its own traceback)."""
    if "prefect" in sys.modules:
        return
    import tomllib
    from pathlib import Path

    for name in ("pyproject.toml", "prefect.toml"):
        try:
            tomllib.loads(Path(name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        except tomllib.TOMLDecodeError:
            from dbnd_prefect.config.files import check_syntax  # imported for the error only: it is slow

            check_syntax(Path.cwd(), (name,))


def _unknown_command(token: str, app: Any, prog: str) -> ConfigError:
    """`unknown command 'gc'; did you mean ...? (commands: run, plan, ...; see dbnd --help)`."""
    from dbnd_prefect.errors import suggest

    names = [name for name in app if not name.startswith("-") and getattr(app[name], "show", True)]
    where = f" of {prog}" if prog != "dbnd" else ""
    return ConfigError(f"unknown command {token!r}{where}{suggest(token, names)}",
                       hint=f"commands: {', '.join(names)}; see {prog} --help")


def _drain_prefect_events() -> None:
    """Send what the run left queued (its data flow, then Prefect's events) before the last line is printed."""
    if "prefect.events.worker" not in sys.modules:
        return
    try:
        from prefect.events.worker import EventsWorker

        if "dbnd_prefect.prefect_ui.data_flow" in sys.modules:  # its artifacts and lineage events come first
            from dbnd_prefect.prefect_ui.data_flow import wait_until_published

            wait_until_published()

        EventsWorker.drain_all(timeout=5)
    except Exception:  # best effort: only the order of lines on stderr depends on it
        pass


def _one_line(text: str) -> str:
    return " ".join(text.split())
