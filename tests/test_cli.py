"""`dbnd` in-process: precedence, provenance, --help, --describe, show-*, and every input mistake."""

from __future__ import annotations

import itertools
import os
import re
import textwrap
from pathlib import Path

import pytest
from pandas import DataFrame

from dbnd_prefect import pipeline, task
from dbnd_prefect.pytest_plugin import CmdResult, run_cmd


@task
def cli_scale(value: int, factor: int = 2, label: str = "default") -> dict:
    """Multiply a value by a factor and label it."""
    return {"value": value * factor, "label": label}


@pipeline
def cli_scale_pipe(value: int = 1):
    return cli_scale(value, factor=10)  # factor is passed explicitly: a call-site argument


@task
def cli_count_rows(table: DataFrame) -> int:
    return len(table)


@task
def cli_fail(reason: str = "boom") -> int:
    raise ValueError(f"cannot go on: {reason}")


def dbnd(*args: str) -> CmdResult:
    return run_cmd(list(args))


def project(workdir: Path, text: str) -> None:
    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n' + textwrap.dedent(text), encoding="utf-8")


def assert_user_error(result: CmdResult, *expected: str) -> str:
    """Exit code 2, exactly one line on stderr naming the problem, no traceback, nothing printed."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dbnd: error: ")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for text in expected:
        assert text in lines[0]
    return lines[0]


def described(result: CmdResult, name: str) -> str:
    assert result.exit_code == 0, result.stderr
    return next(line.split("=", 1)[1].strip() for line in result.stdout.splitlines()
                if line.strip().startswith(f"{name} = "))


# ----- precedence: each layer against each other ---------------------------------------------------

LAYERS = ["default", "project", "conf-file", "env", "set", "override"]


def apply_layers(layers: tuple[str, ...], workdir: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Configure cli_scale.label in each of `layers`; the extra command-line arguments."""
    args: list[str] = []
    if "project" in layers:
        project(workdir, '[cli_scale]\nlabel = "project"\n')
    if "conf-file" in layers:
        (workdir / "conf.toml").write_text('[cli_scale]\nlabel = "conf-file"\n')
        args += ["--conf-file", "conf.toml"]
    if "env" in layers:
        monkeypatch.setenv("DBND__CLI_SCALE__LABEL", "env")
    if "set" in layers:
        args += ["--set", "cli_scale.label=set"]
    if "override" in layers:
        args += ["--override", "cli_scale.label=override"]
    return args


@pytest.mark.parametrize("lower, higher", list(itertools.combinations(LAYERS, 2)))
def test_higher_layer_wins(lower, higher, workdir, monkeypatch):
    args = apply_layers((lower, higher), workdir, monkeypatch)
    result = dbnd("run", "cli_scale", "--set", "value=4", *args, "--describe")
    assert described(result, "label") == repr(higher)


def test_all_layers_at_once_and_help_names_the_winner(workdir, monkeypatch):
    args = apply_layers(tuple(LAYERS), workdir, monkeypatch)
    result = dbnd("run", "cli_scale", *args, "--help")
    row = next(line for line in result.stdout.splitlines() if line.strip().startswith("label"))
    assert "'override'" in row and "override layer, --override cli_scale.label=override" in row


def test_call_site_beats_set_and_env_but_not_override(workdir, monkeypatch):
    monkeypatch.setenv("DBND__CLI_SCALE__FACTOR", "5")
    assert described(dbnd("run", "cli_scale_pipe", "--describe"), "factor") == "10"
    assert described(dbnd("run", "cli_scale_pipe", "--set", "cli_scale.factor=3", "--describe"), "factor") == "10"
    overridden = dbnd("run", "cli_scale_pipe", "--set", "cli_scale.factor=3", "--override", "cli_scale.factor=7",
                      "--describe")
    assert described(overridden, "factor") == "7"
    # without a call-site argument, the env variable fills the parameter
    assert described(dbnd("run", "cli_scale", "--set", "value=1", "--describe"), "factor") == "5"


def test_values_reach_the_task_in_a_real_run(workdir):
    result = dbnd("run", "cli_scale_pipe", "--set", "value=3", "--set", "cli_scale.label=run",
                  "--set", "cli_scale.factor=99", "--override", "cli_scale.factor=4")
    assert result.exit_code == 0, result.stderr
    assert result.run.task_runs[0]["state"] == "Completed"
    manifest_folder = Path(result.run.task_runs[0]["manifest"]).parent
    assert (manifest_folder / "result.json").read_text().replace(" ", "") == '{"value":12,"label":"run"}'
    assert "cli_scale: Completed" in result.stdout
    assert str(manifest_folder / "result.json") in result.stdout
    assert result.stdout.startswith(f"run {result.run.flow_run_id} finished (env local, data root {workdir / 'data'})")
    record = workdir / "data" / ".dbnd" / "runs" / f"{result.run.flow_run_id}.json"
    assert result.stdout.rstrip().endswith(f"run record: {record}") and record.is_file()


def test_summary_links_the_prefect_flow_run(workdir):
    result = dbnd("run", "cli_scale", "--set", "value=2")
    assert result.exit_code == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("prefect flow run "))
    base = os.environ["PREFECT_API_URL"].rstrip("/").removesuffix("/api")
    pattern = rf"prefect flow run '[\w-]+' \(([0-9a-f-]{{36}})\): {re.escape(base)}/runs/flow-run/(\S+)"
    match = re.fullmatch(pattern, line)
    assert match and match.group(1) == match.group(2), line


def test_json_set_and_task_version_now(workdir):
    first = dbnd("run", "cli_scale", "--set", '{"cli_scale.value": 2, "cli_scale.label": "json"}')
    again = dbnd("run", "cli_scale", "--set", '{"value": 2, "cli_scale.label": "json"}')
    fresh = dbnd("run", "cli_scale", "--set", '{"value": 2, "cli_scale.label": "json"}', "--task-version", "now")
    assert [r.exit_code for r in (first, again, fresh)] == [0, 0, 0], fresh.stderr
    assert again.run.task_runs[0]["state"] == "Cached"
    assert fresh.run.task_runs[0]["state"] == "Completed"
    assert fresh.run.task_runs[0]["signature"] != first.run.task_runs[0]["signature"]


# ----- config explain and show-config ------------------------------------------------------------


def test_config_explain_shows_every_layer(workdir, monkeypatch):
    project(workdir, '\n[cli_scale]\nlabel = "project"\n')
    (workdir / "conf.toml").write_text('[cli_scale]\nlabel = "conf"\n')
    monkeypatch.setenv("DBND__CLI_SCALE__LABEL", "env")
    result = dbnd("config", "explain", "cli_scale.label", "--conf-file", "conf.toml", "--set", "cli_scale.label=set")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == textwrap.dedent(
        """\
        cli_scale.label = 'set'
          set by: set layer, --set cli_scale.label=set
          overrides: env layer, env DBND__CLI_SCALE__LABEL = 'env'
          overrides: conf-file layer, conf.toml:2 = 'conf'
          overrides: project layer, dbnd.toml:5 = 'project'
          note: an explicit argument at the call site beats this value; only --override beats that
        """
    )


def test_config_explain_env_flag_and_unset_key(workdir):
    project(workdir, '[env.prod]\ndata_root = "/tmp/prod"\n')
    result = dbnd("config", "explain", "run.env", "--env", "prod")
    assert result.stdout.splitlines()[:2] == ["run.env = 'prod'", "  set by: set layer, --env prod"]
    unset = dbnd("config", "explain", "cli_scale.factor")
    assert unset.stdout.strip() == (
        "cli_scale.factor is not set by any layer (default, project, conf-file, env, set, override)")
    assert_user_error(dbnd("config", "explain", "label"), "config key 'label' does not name a setting")


def test_show_config_lists_values_with_sources(workdir):
    project(workdir, '[cli_scale]\nlabel = "project"\n')
    result = dbnd("show-config", "--set", "cli_scale.factor=3")
    assert result.exit_code == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines[:3] == [
        "[cli_scale]",
        "factor = '3' # set layer, --set cli_scale.factor=3",
        "label = 'project' # project layer, dbnd.toml:4",
    ]
    assert "data_root = 'data' # project layer, dbnd.toml:2" in lines


# ----- --help, --describe, show-tasks ------------------------------------------------------------


def test_task_help_lists_parameters_with_type_default_and_configured_value(workdir):
    project(workdir, '[cli_scale]\nlabel = "from-project"\n')
    result = dbnd("run", "cli_scale", "--set", "factor=3", "--help")
    assert result.exit_code == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines[0].startswith("usage: dbnd run cli_scale [--set cli_scale.PARAM=VALUE]...")
    assert "task cli_scale (tests/test_cli.py:cli_scale)" in lines
    assert "Multiply a value by a factor and label it." in lines
    assert "NAME TYPE DEFAULT VALUE NOW FROM" in lines
    assert "value int (required) (none: required) not configured" in lines
    assert "factor int 2 '3' set layer, --set cli_scale.factor=3" in lines
    assert "label str 'default' 'from-project' project layer, dbnd.toml:4" in lines
    assert "result dict" in lines
    assert any(line.startswith("precedence: --override > call-site argument > --set") for line in lines)


def test_help_of_data_parameter_and_run_help_without_task(workdir):
    lines = dbnd("run", "cli_count_rows", "--help").stdout.splitlines()
    assert any("table" in line and "pandas.DataFrame (data: path or URI)" in line for line in lines)
    general = dbnd("run", "--help")
    assert general.exit_code == 0 and "--describe" in general.stdout and "--task-version" in general.stdout
    bare = dbnd()
    assert bare.exit_code == 2 and bare.stdout.startswith("Usage: dbnd COMMAND")
    top = dbnd("--help")
    assert top.exit_code == 0 and "show-tasks" in top.stdout and "precedence:" in top.stdout


def test_describe_prints_graph_and_runs_nothing(workdir):
    result = dbnd("run", "cli_scale_pipe", "--set", "value=5", "--describe")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (f"pipeline cli_scale_pipe: 1 task run(s) (env local, data root {workdir / 'data'}); "
                        "nothing was run")
    assert lines[1].startswith("cli_scale  [miss]  signature ")
    assert "    value = 5" in lines and "    factor = 10" in lines and "    label = 'default'" in lines
    out = next(line for line in lines if line.startswith("    -> result: "))
    assert out.startswith(f"    -> result: {workdir / 'data' / 'local'}") and out.endswith("/result.json")
    assert not Path(out.split(": ", 1)[1]).exists()
    written = [p for p in (workdir / "data").rglob("*") if p.is_file() and ".dbnd" not in p.parts]
    assert written == []


def test_show_tasks_lists_signatures(workdir):
    result = dbnd("show-tasks", "-m", "flows.prepare_data")
    assert result.exit_code == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "prepare_data(raw_data: pandas.DataFrame) -> result_1, result_2 [flows.prepare_data]" in \
        [" ".join(line.split()) for line in lines]
    assert any(line.startswith("cli_scale(value: int, factor: int = 2, label: str = 'default') -> result")
               for line in lines)
    assert lines.index("pipelines:") < lines.index("tasks:")


# ----- failures at run time ----------------------------------------------------------------------


def test_failing_task_exits_1_and_names_task_and_error(workdir):
    result = dbnd("run", "cli_fail", "--set", "reason=disk full")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "dbnd: error: task 'cli_fail' failed: ValueError: cannot go on: disk full "
        "(run with --verbose for the traceback)")
    assert "Traceback" not in result.stderr


def test_verbose_shows_the_traceback(workdir):
    result = dbnd("run", "cli_scale", "--set", "value=abc", "--verbose")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("dbnd: error: parameter 'cli_scale.value'")


# ----- input mistakes: one line, exit code 2, nothing run or written ------------------------------


ERRORS = [
    (["run", "cli_scal", "--set", "value=1"], ["unknown task or pipeline 'cli_scal'", "did you mean cli_scale"]),
    (["run", "cli_scale", "--set", "cli_scale.valeu=1"],
     ["unknown parameter cli_scale.valeu at --set cli_scale.valeu=1; did you mean 'value'?",
      "(parameters of cli_scale: value, factor, label)"]),
    (["run", "cli_scale", "--set", "valeu=1"],
     ["unknown parameter 'valeu' of cli_scale in --set valeu=...; did you mean 'value'?",
      "parameters of cli_scale: value, factor, label"]),
    (["run", "cli_scale_pipe", "--override", "cli_scale.factr=2"],
     ["unknown parameter cli_scale.factr at --override cli_scale.factr=2; did you mean 'factor'?"]),
    (["run", "cli_scale_pipe", "--set", "cli_scael.factor=2"],
     ["unknown task 'cli_scael' in --set cli_scael.factor=2; did you mean 'cli_scale'?"]),
    (["run", "cli_scale", "--set", "value"],
     ["invalid --set value 'value': missing '='", "expected --set TASK.PARAM=VALUE or a JSON object"]),
    (["run", "cli_scale", "--set", '{"value": 1'], ["invalid --set value '{\"value\": 1': not valid JSON"]),
    (["run", "cli_scale", "--override", "=3"], ["invalid --override value '=3': bad key ''",
                                                "expected --override TASK.PARAM=VALUE"]),
    (["run", "cli_scale", "--set", "value=abc"],
     ["parameter 'cli_scale.value' expects an integer, got 'abc' at --set cli_scale.value=abc"]),
    (["run", "cli_scale_pipe", "--set", "cli_scale.factor=2.5"],
     ["parameter 'cli_scale.factor' expects an integer, got '2.5' at --set cli_scale.factor=2.5"]),
    (["run", "cli_scale", "--set", "value=1", "--env", "prdo"],
     ["unknown environment 'prdo' (from --env prdo)", "known profiles: docker, k8s, local"]),
    (["run", "cli_scale", "--set", "value=1", "--conf-file", "missing.toml"],
     ["configuration file not found: missing.toml"]),
    (["run", "cli_count_rows", "--set", "table=missing.csv"],
     ["input file not found: cli_count_rows.table = 'missing.csv' (from --set cli_count_rows.table=missing.csv"]),
    (["run", "cli_count_rows", "--set", "table=rows.xyz"],
     ["cli_count_rows.table = 'rows.xyz'", "cannot tell the format of"]),
    (["run", "cli_scale"], ["task 'cli_scale' is missing required parameter(s) ['value']",
                            "--set cli_scale.value=VALUE"]),
    (["run", "cli_scale", "-m", "no_such_module_here"],
     ["cannot import module 'no_such_module_here' (from -m/--module)"]),
    (["run", "flows.prepare_data.prepare_dta"],
     ["'flows.prepare_data' has no task or pipeline 'prepare_dta'", "did you mean prepare_data?"]),
    (["run"], ["dbnd run: missing TASK"]),
    (["run", "cli_scale.value", "--set", "value=1"],
     ["unknown task or pipeline 'cli_scale.value' (did you mean cli_scale"]),
    (["config"], ["dbnd config: missing SUBCOMMAND"]),
    (["run", "cli_scale", "--bogus"], ["dbnd run: Unknown option: --bogus", "(see dbnd run --help)"]),
    (["run", "cli_scale", "--set", "value=1", "--set", "run.verify=quick"], ["invalid run.verify = 'quick'"]),
]


@pytest.mark.parametrize("args, expected", ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
def test_input_mistakes(args, expected, workdir):
    (workdir / "rows.xyz").write_text("a\n1\n")
    result = dbnd(*args)
    assert_user_error(result, *expected)
    assert not (workdir / "data").exists()
    assert result.run is None


USAGE_MISTAKES = [
    (["run", "cli_scale", "--bogus"], ["dbnd run: Unknown option: --bogus", "(see dbnd run --help)"]),
    (["run", "cli_scale", "--set"], ["dbnd run:", "--set requires an argument", "(see dbnd run --help)"]),
    (["plan"], ["dbnd plan:", "TASK requires an argument"]),
    (["versions"], ["dbnd versions:", "TASK requires an argument"]),
    (["reproduce"], ["dbnd reproduce:", "RUN_ID requires an argument"]),
    (["config", "explain"], ["dbnd config explain:", "KEY requires an argument"]),
    (["versions", "cli_scale", "result", "extra"], ["dbnd versions: unexpected argument(s): extra"]),
    (["server", "restart"], ["dbnd server:", "\"restart\"", "status", "start", "stop"]),
    (["runn", "cli_scale"], ["unknown command 'runn'", "did you mean 'run'?"]),
    (["show-tasks", "--task-version", "3"], ["dbnd show-tasks: Unknown option: --task-version"]),
]


@pytest.mark.parametrize("args, expected", USAGE_MISTAKES, ids=[" ".join(a) for a, _ in USAGE_MISTAKES])
def test_usage_mistakes_are_one_line_with_exit_code_2(args, expected, workdir):
    result = dbnd(*args)
    assert_user_error(result, *expected)
    assert result.run is None and not (workdir / "data").exists()
    verbose = dbnd(*args, "--verbose")
    assert verbose.exit_code == 2 and "Traceback" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1] == result.stderr.strip()


def test_later_set_beats_earlier_and_values_keep_their_equals_signs(workdir):
    first, second = "cli_scale.label=first", "label=second"
    assert described(dbnd("run", "cli_scale", "--set", "value=1", "--set", first, "--set", second, "--describe"),
                      "label") == "'second'"
    assert described(dbnd("run", "cli_scale", "--set", "value=1", "--set", second, "--set", first, "--describe"),
                      "label") == "'first'"
    assert described(dbnd("run", "cli_scale", "--set", "value=1", "--set", "label=a=b==c", "--describe"),
                      "label") == "'a=b==c'"
    as_json = dbnd("run", "cli_scale", "--set", '{"cli_scale.value": 1, "cli_scale.label": "k=v {x}"}',
                   "--set", "factor=3", "--describe")
    assert described(as_json, "label") == "'k=v {x}'" and described(as_json, "factor") == "3"
    mixed = dbnd("run", "cli_scale", "--set", '{"value": 1, "label": "json"}', "--set", "label=later", "--describe")
    assert described(mixed, "label") == "'later'"


def test_config_file_mistakes_name_file_and_line(workdir):
    project(workdir, "[cli_scale]\nfactor = 3\nlabel 'x'\n")
    assert_user_error(dbnd("run", "cli_scale", "--set", "value=1"), "dbnd.toml:5: invalid TOML")
    project(workdir, '[cli_scale]\nfactor = "three"\n')
    assert_user_error(dbnd("run", "cli_scale", "--set", "value=1"),
                      "parameter 'cli_scale.factor' expects an integer, got 'three' at dbnd.toml:4")
    project(workdir, "[cli_scale]\nfactr = 3\n")
    assert_user_error(dbnd("run", "cli_scale", "--set", "value=1"),
                      "unknown parameter cli_scale.factr at dbnd.toml:4; did you mean 'factor'?")
    assert not (workdir / "data").exists()


def test_unknown_env_variable_value(workdir, monkeypatch):
    monkeypatch.setenv("DBND__CLI_SCALE__FACTOR", "lots")
    assert_user_error(dbnd("run", "cli_scale", "--set", "value=1"),
                      "expects an integer, got 'lots' at env DBND__CLI_SCALE__FACTOR")


def test_file_task_form_and_task_version_key(workdir):
    (workdir / "local_tasks.py").write_text(textwrap.dedent(
        """
        from dbnd_prefect import task

        @task
        def cli_local_double(x: int = 1) -> int:
            return 2 * x
        """))
    result = dbnd("run", "local_tasks.py:cli_local_double", "--set", "x=21", "--set", "task_version=3")
    assert result.exit_code == 0, result.stderr
    assert "cli_local_double: Completed" in result.stdout
    assert_user_error(dbnd("run", "local_tasks.py:cli_local_doubel"),
                      "'local_tasks' has no task or pipeline 'cli_local_doubel'", "did you mean cli_local_double?")
