"""R4: the bad-input catalogue — one table of hostile or mistaken input, run through the real `dbnd` CLI.

Every case is one line on stderr (`dbnd: error: ...`) naming the culprit and ending with the fix in
parentheses, exit code 2, no traceback, nothing on stdout and nothing written in the project (its files are
compared before and after). Cases marked `runs` are bad data found only when a task loads it: the run has
started, so its run record (and nothing else) is written.

docs/bad-input.md is generated from this catalogue with the messages the cases actually print, and
`test_the_docs_table_is_up_to_date` fails when it drifts: regenerate it with `python scripts/bad_input_doc.py`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pandas import DataFrame

from dbnd_prefect import pipeline, task
from dbnd_prefect.definitions import registry as task_registry
from dbnd_prefect.pytest_plugin import CmdResult, run_cmd

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "bad-input.md"
WRITE_DOC = "DBND_WRITE_BAD_INPUT_DOC"  # set by scripts/bad_input_doc.py: write the doc instead of comparing
POOL = "r4-pool"  # a process work pool created on the test server for the deployment cases


@task
def r4_scale(value: int, factor: int = 2, ratio: float = 0.5, flag: bool = False, label: str = "x") -> int:
    return int(value * factor * ratio) if flag else value * factor


@task
def r4_when(day: dt.date = dt.date(2024, 1, 31), wait: dt.timedelta = dt.timedelta(0), at: dt.datetime | None = None,
            options: dict | None = None) -> str:
    return f"{day} {wait} {at} {options}"


@task
def r4_count(table: DataFrame) -> int:
    return len(table)


@task
def r4_summary(frame: DataFrame) -> dict:
    return {"rows": len(frame)}


@task
def r4_frame(rows: int = 3) -> DataFrame:
    return DataFrame({"a": range(rows)})


@pipeline
def r4_pipe(path: str = "rows.csv"):
    """The path reaches r4_count from the pipeline's code, so bad data is found only when the task loads it."""
    return r4_scale(r4_count(path))


@dataclass(frozen=True)
class Case:
    """One bad input: where it is (`area`), what the user does (`args`, plus files, config and environment)
    and what the one line must say (`expected`: the culprit and the fix)."""

    area: str
    args: tuple[str, ...]
    expected: tuple[str, ...]
    config: str = ""  # appended to the project's dbnd.toml
    files: dict[str, str | bytes | None] = field(default_factory=dict)  # None: an empty directory
    env: dict[str, str] = field(default_factory=dict)
    runs: bool = False  # found while a task loads its data: the run (and its run record) exists
    # packages this user has not installed: made unimportable (`sys.modules[name] = None`, as Python documents)
    missing: tuple[str, ...] = ()



def case(area: str, args: str | list[str], *expected: str, **kw) -> Case:
    argv = tuple(shlex.split(args) if isinstance(args, str) else args)
    return Case(area, argv, tuple(expected), **kw)


BAD_TOML = "[r4_scale]\nfactor = 3\nlabel 'x'\n"
CASES: list[Case] = [
    # ----- the command line -----------------------------------------------------------------------
    case("CLI", "runn r4_scale", "unknown command 'runn'", "did you mean 'run'?", "see dbnd --help"),
    case("CLI", "run r4_scale --bogus", "Unknown option: --bogus", "(see dbnd run --help)"),
    case("CLI", "run", "dbnd run: missing TASK"),
    case("CLI", "run r4_scal --set value=1", "unknown task or pipeline 'r4_scal'", "did you mean r4_scale"),
    case("CLI", "run r4_scale --set", "--set requires an argument", "(see dbnd run --help)"),
    case("CLI", "run r4_scale --set value", "invalid --set value 'value': missing '='",
         "(expected --set TASK.PARAM=VALUE"),
    case("CLI", ["run", "r4_scale", "--set", '{"value": 1'], "not valid JSON", "(expected --set TASK.PARAM=VALUE"),
    case("CLI", ["run", "r4_scale", "--set", '{"r4_scale": {"value one": 1}}'], "bad key 'r4_scale.value one'"),
    case("CLI", "run r4_scale --override =3", "invalid --override value '=3': bad key ''",
         "(expected --override TASK.PARAM=VALUE"),
    case("CLI", "run r4_scale --set valeu=1", "unknown parameter 'valeu' of r4_scale", "did you mean 'value'?"),
    case("CLI", "run r4_scale --set r4_scale.valeu=1", "unknown parameter r4_scale.valeu at --set",
         "(parameters of r4_scale: value, factor, ratio, flag, label)"),
    case("CLI", "run r4_pipe --set r4_scael.factor=2", "unknown task 'r4_scael' in --set r4_scael.factor=2",
         "did you mean 'r4_scale'?"),
    case("CLI", "run r4_scale", "task 'r4_scale' is missing required parameter(s) ['value']",
         "--set r4_scale.value=VALUE"),
    case("CLI", "run r4_scale --set value=1 -m no_such_module_r4", "cannot import module 'no_such_module_r4'"),
    case("CLI", "run nowhere.py:r4_scale", "nowhere.py"),
    case("CLI", "run r4_scale --set value=1 --task-target-date 2024-13-01", "2024-13-01"),
    case("CLI", "versions r4_scale result extra", "dbnd versions: unexpected argument(s): extra"),
    case("CLI", "server restart", "dbnd server:", '"restart"'),
    case("CLI", "reproduce not-a-run", "'not-a-run' is not a Prefect flow run id"),
    case("CLI", "config explain label", "config key 'label' does not name a setting", "(use SECTION.KEY"),
    case("CLI", "config explain r4_scale.valeu", "unknown parameter r4_scale.valeu", "did you mean 'value'?"),
    # ----- configuration files --------------------------------------------------------------------
    case("config file", "run r4_scale --set value=1", "dbnd.toml:5: invalid TOML", "(fix the syntax at that line)",
         config=BAD_TOML),
    case("config file", "run r4_scale --set value=1", "unknown key run.dta_root", "did you mean 'data_root'?",
         files={"dbnd.toml": '[run]\ndta_root = "data"\n'}),
    case("config file", "run r4_scale --set value=1", "invalid run.verify = 'quick' at dbnd.toml:3",
         files={"dbnd.toml": '[run]\ndata_root = "data"\nverify = "quick"\n'}),
    case("config file", "run r4_scale --set value=1", "key 'data_root' is outside any section",
         "(put it under a [SECTION] table", files={"dbnd.toml": 'data_root = "data"\n'}),
    case("config file", "run r4_scale --set value=1",
         "parameter 'r4_scale.factor' expects an integer, got 'three' at dbnd.toml:4",
         config='[r4_scale]\nfactor = "three"\n'),
    case("config file", "run r4_scale --set value=1", "unknown parameter r4_scale.factr at dbnd.toml:4",
         "did you mean 'factor'?", config="[r4_scale]\nfactr = 3\n"),
    case("config file", "run r4_scale --set value=1 --conf-file missing.toml",
         "configuration file not found: missing.toml", "(check the --conf-file path)"),
    case("config file", "run r4_scale --set value=1 --conf-file bad.toml", "bad.toml:2: invalid TOML",
         files={"bad.toml": "[run]\nverify = \n"}),
    case("config file", "run r4_scale --set value=1 --conf-file latin1.toml",
         "cannot read configuration file latin1.toml", "(save it as UTF-8 TOML)",
         files={"latin1.toml": '[r4_scale]\nlabel = "caf\xe9"\n'.encode("latin-1")}),
    case("config file", "run r4_scale --set value=1", "tool.dbnd must be a table",
         files={"pyproject.toml": '[tool]\ndbnd = "yes"\n'}),
    case("config file", "run r4_scale --set value=1", "invalid run.api = 'ftp://prefect:4200'",
         files={"dbnd.toml": '[run]\ndata_root = "data"\napi = "ftp://prefect:4200"\n'}),
    # ----- environment variables ------------------------------------------------------------------
    case("env variable", "run r4_scale --set value=1", "expects an integer, got 'lots' at env DBND__R4_SCALE__FACTOR",
         env={"DBND__R4_SCALE__FACTOR": "lots"}),
    case("env variable", "run r4_scale --set value=1", "invalid run.verify = 'quick' at env DBND__RUN__VERIFY",
         env={"DBND__RUN__VERIFY": "quick"}),
    case("env variable", "run r4_scale --set value=1", "unknown environment 'prdo' (from env DBND__RUN__ENV)",
         "known profiles: docker, k8s, local", env={"DBND__RUN__ENV": "prdo"}),
    case("env variable", "run r4_scale --set value=1", "environment variable DBND__VERBOSE does not name a setting",
         "(use DBND__SECTION__KEY=value", env={"DBND__VERBOSE": "1"}),
    case("env variable", "run r4_scale --set value=1", "unknown key run.dta_root at env DBND__RUN__DTA_ROOT",
         "did you mean 'data_root'?", env={"DBND__RUN__DTA_ROOT": "elsewhere"}),
    case("env variable", "run r4_scale --set value=1", "unknown parameter r4_scale.factr at env DBND__R4_SCALE__FACTR",
         env={"DBND__R4_SCALE__FACTR": "3"}),
    # ----- formats and data -----------------------------------------------------------------------
    case("format", "run r4_count --set table=rows.xyz", "r4_count.table = 'rows.xyz'", "cannot tell the format of",
         "(known extensions:", files={"rows.xyz": "a\n1\n"}),
    case("format", "run r4_count --set table=missing.csv", "input file not found: r4_count.table = 'missing.csv'"),
    case("format", "run r4_count --set table=folder.csv", "holds no data files",
         "(pass the path of a file, or of a folder of part files)", files={"folder.csv": None}),
    case("format", "run r4_pipe --set path=corrupt.parquet", "task 'r4_count', parameter 'table'", "as parquet",
         "(check the file's content", files={"corrupt.parquet": b"PAR1 this is not a parquet file"}, runs=True),
    case("format", "run r4_pipe --set path=broken.csv", "task 'r4_count', parameter 'table'", "as csv",
         "(check the file's content", files={"broken.csv": 'a,b\n1,2\n"an unterminated quote\n'}, runs=True),
    case("format", "run r4_pipe --set path=empty.csv", "task 'r4_count', parameter 'table'", "EmptyDataError",
         files={"empty.csv": ""}, runs=True),
    case("format", "run badformat.py:r4_bad_format", "unknown format 'parkay'", "known formats: csv",
         files={"badformat.py": 'from dbnd_prefect import task\n\n\n@task(output_formats="parkay")\n'
                                'def r4_bad_format() -> dict:\n    return {}\n'}),
    # ----- types ----------------------------------------------------------------------------------
    case("type", "run r4_scale --set value=abc", "parameter 'r4_scale.value' expects an integer, got 'abc'",
         "(pass e.g. --set r4_scale.value=<an integer>)"),
    case("type", "run r4_scale --set value=1 --set factor=2.5", "expects an integer, got '2.5'"),
    case("type", "run r4_scale --set value=1 --set ratio=half", "expects a number, got 'half'"),
    case("type", "run r4_scale --set value=1 --set flag=maybe", "expects a boolean (true/false), got 'maybe'"),
    case("type", "run r4_when --set day=2024-02-30", "expects an ISO date (YYYY-MM-DD), got '2024-02-30'"),
    case("type", "run r4_when --set 'wait=5 parsecs'", "expects a duration", "got '5 parsecs'"),
    case("type", "run r4_when --set at=yesterday", "expects an ISO datetime, got 'yesterday'"),
    case("type", "run r4_when --set options=[1,2]", "expects a JSON dict, got '[1,2]'"),
    # ----- URIs -----------------------------------------------------------------------------------
    case("URI", "run r4_count --set table=nope://bucket/rows.csv", "unknown storage protocol 'nope://'",
         "(use a local path or a URI such as s3://"),
    case("URI", "run r4_count --set table=memory://r4/missing.csv", "input 'memory://r4/missing.csv' does not exist",
         "(check the path, or pass another with --set)"),
    case("URI", "run r4_count --set table=https://user:hunter2@127.0.0.1:9/rows.csv", "127.0.0.1:9/rows.csv",
         "cannot reach the store"),
    case("URI", "run r4_scale --set value=1 --set run.data_root=nope://bucket/root",
         "invalid run.data_root = 'nope://bucket/root' at --set run.data_root=nope://bucket/root",
         "unknown storage protocol 'nope://'"),
    case("URI", "run r4_count --set table=file:///no/such/dir/rows.csv", "input file not found",
         "/no/such/dir/rows.csv"),
    # ----- environment profiles -------------------------------------------------------------------
    case("profile", "run r4_scale --set value=1 --env prdo", "unknown environment 'prdo' (from --env prdo)",
         "(known profiles: docker, k8s, local"),
    case("profile", "show-env stagin", "unknown environment 'stagin'", "did you mean 'staging'?",
         config='[env.staging]\ndata_root = "stage"\n'),
    case("profile", "run r4_scale --set value=1 --env prod", "unknown key env.prod.work_poll", "did you mean 'work_pool'?",
         config='[env.prod]\nwork_poll = { type = "docker" }\n'),
    case("profile", "run r4_scale --set value=1 --env prod", "env.prod extends unknown environment 'k8s_prd'",
         "did you mean 'k8s_prod'?", config='[env.prod]\nextends = "k8s_prd"\n[env.k8s_prod]\nextends = "k8s"\n'),
    case("profile", "run r4_scale --set value=1 --env prod", "makes a cycle: prod -> stage -> prod",
         config='[env.prod]\nextends = "stage"\n[env.stage]\nextends = "prod"\n'),
    case("profile", "run r4_scale --set value=1 --env prod", "unknown key env.prod.task_runner.n_worker",
         "did you mean 'n_workers'?", config='[env.prod.task_runner]\ntype = "dask"\nn_worker = 2\n'),
    case("profile", "run r4_scale --set value=1 --env prod", "invalid env.prod.work_pool.type = 'ecs'",
         config='[env.prod.work_pool]\ntype = "ecs"\n'),
    case("profile", "run r4_scale --set value=1 --env ray", "needs prefect-ray", "pip install prefect-ray",
         config='[env.ray]\ntask_runner = { type = "ray" }\n', missing=("prefect_ray",)),
    case("profile", "run r4_scale --set value=1 --env cluster", "environment 'cluster' runs work off this machine",
         "is on this machine", "env.cluster.data_root", config='[env.cluster]\nextends = "k8s"\n'),
    case("profile", "run r4_scale --set value=1 --env k8s", "profile 'k8s': memory 'lots' is not a memory amount",
         config='[env.k8s]\nmemory = "lots"\n'),
    # ----- deployments ----------------------------------------------------------------------------
    case("deployment", "deploy r4_pipe --env gone --write-only", "work pool 'r4-no-such-pool' of environment 'gone' "
         "does not exist", "(create it: prefect work-pool create r4-no-such-pool --type process)",
         config='[env.gone]\nwork_pool = { name = "r4-no-such-pool" }\n'),
    case("deployment", "deploy r4_pipe --env nightly --write-only --param r4_scale.factr=3",
         "r4_pipe has no deployment parameter 'r4_scale.factr'", "did you mean 'r4_scale.factor'?",
         config=f'[env.nightly]\nwork_pool = {{ name = "{POOL}" }}\n'),
    case("deployment", "deploy r4_pipe --env nightly --write-only --param r4_scale.factor=lots",
         "r4_scale.factor", "lots", config=f'[env.nightly]\nwork_pool = {{ name = "{POOL}" }}\n'),
    case("deployment", "deploy r4_pipe --env nightly --write-only --param factor", "--param 'factor' is not KEY=VALUE",
         "(e.g. --param train_model.alpha=0.3)", config=f'[env.nightly]\nwork_pool = {{ name = "{POOL}" }}\n'),
    case("deployment", "deploy r4_scale --env nightly --write-only", "r4_scale is a task; a deployment runs a pipeline",
         config=f'[env.nightly]\nwork_pool = {{ name = "{POOL}" }}\n'),
    case("deployment", "deploy r4_pipe --env nightly --write-only --cron '0 6 * * *' --interval 60",
         "give --cron or --interval, not both", config=f'[env.nightly]\nwork_pool = {{ name = "{POOL}" }}\n'),
    # ----- version selectors ----------------------------------------------------------------------
    case("selector", "run r4_summary --set frame=r4_scale.result@latest",
         "r4_summary.frame (from --set r4_summary.frame=r4_scale.result@latest)",
         "no stored outputs of task 'r4_scale'", "(run 'r4_scale' first, or see `dbnd versions r4_scale`)"),
    case("selector", "run r4_summary --set frame=r4_scale.result@run:0000dead", "for flow run 0000dead"),
    case("selector", "versions r4_nope", "unknown task or pipeline 'r4_nope'"),
    case("selector", "versions r4_scale reslt", "task 'r4_scale' has no output 'reslt'; did you mean 'result'?",
         "(its outputs are result)"),
    case("selector", "reproduce 0123abcd", "no recorded task runs for flow run '0123abcd'"),
]


# ----- running a case ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    result: CmdResult
    line: str  # the one stderr line, with the project directory shown as /project
    changed: list[str]  # files created, changed or deleted in the project (besides an allowed run record)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def run_case(item: Case, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """Lay out the case's project in `workdir` (the working directory), run it, and see what it left."""
    from dbnd_prefect.config import reset_config_cache

    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n' + item.config, encoding="utf-8")
    (workdir / "rows.csv").write_text("a\n1\n2\n3\n")
    for name, content in item.files.items():
        path = workdir / name
        if content is None:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    for name in [n for n in os.environ if n.startswith("DBND__")]:
        monkeypatch.delenv(name)
    for name, value in item.env.items():
        monkeypatch.setenv(name, value)
    for name in item.missing:
        monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.delitem(sys.modules, "dbnd_prefect.engine.ray_runner", raising=False)
    monkeypatch.chdir(workdir)
    # the project's tasks are this module's: other test modules' tasks (same process) must not change the
    # lists of known tasks and the closest names the messages give
    monkeypatch.setattr(task_registry, "_by_name",
                        {name: dict(found) for name, found in task_registry._by_name.items() if name.startswith("r4_")})
    reset_config_cache()
    before = snapshot(workdir)
    try:
        result = run_cmd(list(item.args))
    finally:
        reset_config_cache()
    after = snapshot(workdir)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    if item.runs:  # the run started: its run record is all it may leave
        changed = [name for name in changed if not re.fullmatch(r"data/\.dbnd/runs/[^/]+\.json", name)]
    lines = [line for line in result.stderr.strip().splitlines() if "| INFO " not in line]
    line = lines[0] if len(lines) == 1 else "\n".join(lines)
    for path in {str(workdir), os.path.realpath(workdir)}:
        line = line.replace(path, "/project")
    line = re.sub(r"127\.0\.0\.1:\d{4,5}/api", "127.0.0.1:PORT/api", line)
    return Outcome(item, result, line, changed)


IDS = [f"{number:02d} {c.area}: {' '.join(c.args)}"[:80] for number, c in enumerate(CASES, start=1)]
OUTCOMES: dict[int, Outcome] = {}  # filled by the parametrized test, rendered by the doc test


@pytest.fixture(scope="module")
def work_pool():
    """A process work pool on the test server, for the deployment cases that get past the pool check."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async def create() -> None:
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))

    async def delete() -> None:
        async with get_client() as client:
            await client.delete_work_pool(POOL)

    try:
        asyncio.run(create())
    except ObjectAlreadyExists:  # a server kept from an earlier session (DBND_TEST_PREFECT_API_URL)
        pass
    yield POOL
    asyncio.run(delete())


@pytest.mark.parametrize("number", range(len(CASES)), ids=IDS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(number, tmp_path, monkeypatch, work_pool):
    item = CASES[number]
    outcome = run_case(item, tmp_path, monkeypatch)
    OUTCOMES[number] = outcome
    result, line = outcome.result, outcome.line
    assert result.exit_code == 2, result
    assert "\n" not in line, result.stderr  # one line
    assert line.startswith("dbnd: error: "), line
    assert "Traceback" not in result.stderr and result.stdout == "", result
    for text in item.expected:
        assert text in line, line
    assert "hunter2" not in result.stderr, line  # a password in a URI's user info is never shown
    assert re.search(r"\([^()]*(\([^()]*\)[^()]*)*\)$", line), f"no fix in parentheses at the end: {line}"
    assert outcome.changed == [], f"written: {outcome.changed}"


def test_the_catalogue_covers_every_area():
    areas = {c.area for c in CASES}
    assert areas == {"CLI", "config file", "env variable", "format", "type", "URI", "profile", "deployment",
                     "selector"}
    assert len(CASES) >= 40


# ----- the docs table ------------------------------------------------------------------------------------


def render(outcomes: list[Outcome]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Bad input: what `dbnd` says",
        "",
        "Generated by `python scripts/bad_input_doc.py` from the catalogue in "
        "`tests/reliability/test_r4_bad_input.py` (issue #17, R4); the test suite fails when this page and the",
        "messages drift apart. Each case runs the real `dbnd` command in a fresh project (`/project`, with",
        "`[run] data_root = \"data\"` in its `dbnd.toml` and a `rows.csv`). Every one exits with code 2 and prints",
        "exactly this one line on stderr: no traceback (`--verbose` adds it), nothing on stdout, and nothing",
        "written — except the cases marked *found while loading*, whose run has started and leaves its run record",
        "in `data/.dbnd/runs/`.",
        "",
        f"{len(outcomes)} cases.",
        "",
        "| # | area | input | message (stderr) |",
        "|---:|---|---|---|",
    ]
    for number, outcome in enumerate(outcomes, start=1):
        item = outcome.case
        given = [f"`{shlex.join(['dbnd', *item.args])}`"]
        if item.config or "dbnd.toml" in item.files:
            text = item.files.get("dbnd.toml") or ('[run]\ndata_root = "data"\n' + item.config)
            given.append("dbnd.toml: `" + "⏎".join(str(text).strip().splitlines()) + "`")
        for name, content in item.files.items():
            if name == "dbnd.toml":
                continue
            if content is None:
                given.append(f"{name}: an empty directory")
            else:
                shown = content.decode("latin-1") if isinstance(content, bytes) else content
                shown = "⏎".join(shown.strip().splitlines()) or "(empty)"
                given.append(f"{name}: `{shown}`")
        given += [f"`{k}={v}`" for k, v in item.env.items()]
        if item.runs:
            given.append("*found while loading*")
        lines.append(f"| {number} | {item.area} | {cell('<br>'.join(given))} | `{cell(outcome.line)}` |")
    return "\n".join(lines) + "\n"


def test_the_docs_table_is_up_to_date(tmp_path_factory, monkeypatch, work_pool):
    outcomes = []
    for number, item in enumerate(CASES):
        outcome = OUTCOMES.get(number)
        if outcome is None:  # this test was run alone
            with monkeypatch.context() as patch:
                outcome = run_case(item, tmp_path_factory.mktemp("r4"), patch)
        outcomes.append(outcome)
    text = render(outcomes)
    if os.environ.get(WRITE_DOC):
        DOC.write_text(text, encoding="utf-8")
    assert DOC.exists() and DOC.read_text(encoding="utf-8") == text, (
        "docs/bad-input.md is out of date: run python scripts/bad_input_doc.py")
