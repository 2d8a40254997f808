"""`dbnd show-env [NAME]`: an environment profile resolved through its parents, with where each value came from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbnd_prefect.cli.app import ConfigOptions
    from dbnd_prefect.config.model import DbndConfig


def show_env_command(name: str | None, options: ConfigOptions) -> int:
    """Print profile `name` (default: the active one, `run.env`/`--env`): key, value, source per row."""
    from dbnd_prefect.cli import output
    from dbnd_prefect.cli.commands import parse_values
    from dbnd_prefect.api.run import build_config
    from dbnd_prefect.config import known_envs

    resolved = build_config(Path.cwd(), options.conf_files, parse_values(options.set_values, "--set"),
                            parse_values(options.override_values, "--override"), env=options.env)
    config, active = resolved.config, resolved.settings.env
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


def profile_rows(config: DbndConfig, name: str) -> list[tuple[str, str, str]]:
    """(key, shown value, where it came from) for every value of profile `name`, its effective data root
    and storage block included (from `[run]` when the profile sets none)."""
    from dbnd_prefect.config import run_settings
    from dbnd_prefect.config.model import display_value
    from dbnd_prefect.config.profiles import ProfileValue, resolve_profile

    resolved = resolve_profile(config, name)
    rows: list[tuple[str, str, str]] = []
    if len(resolved.chain) > 1:
        declared = config.get_value(f"env.{name}", "extends")
        rows.append(("extends", " -> ".join(resolved.chain[1:]),
                     f"{declared.layer} layer, {declared.source}" if declared else "default (every profile "
                                                                                  "extends local)"))
    given = dict(resolved.values)
    given.setdefault(("work_pool", "name"), ProfileValue(resolved.profile.work_pool.name, "default",
                                                         "default (the profile's name)", name))
    run_values = resolved.run_values()
    settings_config = config.with_layer("set", {"run": {"env": name}}, f"--env {name}")
    settings = run_settings(settings_config)
    for key in ("data_root", "storage_block"):
        if key not in run_values:
            found = config.get_value("run", key)
            if found is not None:
                given[(key,)] = ProfileValue(getattr(settings, key), found.layer, f"{found.source} [run]", name)
    for path in sorted(given, key=_row_order):
        found = given[path]
        layer = "built-in" if found.builtin and found.source.startswith("built-in") else f"{found.layer} layer"
        rows.append((".".join(path), display_value(path[-1], found.value), f"{layer}, {found.where(name)}"
                     if not found.builtin else found.source))
    return rows


def _row_order(path: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
    from dbnd_prefect.config.profile_model import WORKER_KEYS

    order = ("work_pool", *WORKER_KEYS, "job_variables", "task_runner", "data_root", "storage_block", "env", "spark")
    return (order.index(path[0]) if path[0] in order else len(order), path)
