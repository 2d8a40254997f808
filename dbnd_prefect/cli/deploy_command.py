"""`dbnd deploy`: create or update the deployments of pipelines for an environment profile."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from dbnd_prefect.cli.app import ConfigOptions


def deploy_command(pipelines: Sequence[str], options: ConfigOptions, *, name: str | None, params: Sequence[str],
                   cron: str | None, interval: float | None, prefect_file: str, apply: bool) -> int:
    """Write the `prefect.yaml` entries, apply them with `prefect deploy`, and say what was deployed where.

    `--set`/`--override` configure the deploying (the profile, its data root); deployment parameters are
    `--param KEY=VALUE`.
    """
    from dbnd_prefect.cli.commands import parse_values
    from dbnd_prefect.api.deploy import deploy, parse_parameter
    from dbnd_prefect.errors import ConfigError

    if not pipelines:
        raise ConfigError("dbnd deploy: missing PIPELINE", hint="dbnd deploy flows/x.py:my_pipeline --env NAME")
    parameters = dict(parse_parameter(text) for text in params)
    planned = deploy(pipelines, options.env, name=name, parameters=parameters, cron=cron, interval=interval,
                     prefect_file=prefect_file, apply=apply, cwd=Path.cwd(), conf_files=options.conf_files,
                     set_values=parse_values(options.set_values, "--set"),
                     override_values=parse_values(options.override_values, "--override"), modules=options.modules)
    for item in planned:
        pool = item.entry["work_pool"]["name"]
        done = "deployed" if apply else "written"
        print(f"{done} {item.full_name} (work pool {pool}, environment "
              f"{item.entry['work_pool']['job_variables']['env']['DBND__RUN__ENV']}) in {prefect_file}")
        for key, uri in item.uploaded.items():
            print(f"  uploaded {key} to {uri}")
    if planned and apply:
        print(f"run it: prefect deployment run '{planned[0].full_name}'")
    return 0
