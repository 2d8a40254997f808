"""`dbnd show-env [NAME]`: an environment profile resolved through its parents, with where each value came from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbnd_prefect.cli.app import ConfigOptions


def show_env_command(name: str | None, options: ConfigOptions) -> int:
    """Print profile `name` (default: the active one, `run.env`/`--env`): key, value, source per row."""
    from dbnd_prefect.cli import output
    from dbnd_prefect.cli.commands import parse_values
    from dbnd_prefect.config import active_env, known_envs
    from dbnd_prefect.profiles import profile_rows
    from dbnd_prefect.run_api import build_config

    config = build_config(Path.cwd(), options.conf_files, parse_values(options.set_values, "--set"),
                          parse_values(options.override_values, "--override"), env=options.env)
    active = active_env(config)
    chosen = name or active
    rows = profile_rows(config, chosen)
    head = f"env {chosen}" + (" (active)" if chosen == active else "")
    others = f"profiles: {', '.join(known_envs(config))}"
    output.show(lambda: plain_listing(head, rows, others), lambda: table_listing(head, rows, others))
    return 0


def plain_listing(head: str, rows: list[tuple[str, str, str]], footer: str) -> str:
    """`KEY  VALUE  SOURCE` lines under a head line, aligned: greppable output."""
    width = max((len(key) for key, _, _ in rows), default=0)
    value_width = max((len(value) for _, value, _ in rows), default=0)
    lines = [head, *(f"  {key:<{width}}  {value:<{value_width}}  {source}" for key, value, source in rows), footer]
    return "\n".join(lines)


def table_listing(head: str, rows: list[tuple[str, str, str]], footer: str) -> Any:
    """The same as a rich table (on a terminal)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, header_style="bold")
    for column in ("KEY", "VALUE", "FROM"):
        table.add_column(column, overflow="fold")
    for key, value, source in rows:
        table.add_row(key, value, Text(source, style="dim"))
    return Group(Text(head, style="bold"), table, Text(footer))
