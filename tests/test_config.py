"""Layered configuration: precedence, provenance, explain, --set parsing, checks, profiles, context."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dbnd_prefect.config import (
    ConfigValue,
    DbndConfig,
    active_env,
    check_task_section,
    config_context,
    current_config,
    env_section,
    find_project_files,
    load_config,
    parse_set,
    reset_config_cache,
    run_settings,
    task_values,
)
from dbnd_prefect.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project dir with pyproject.toml and dbnd.toml, both setting prepare_data.raw_data."""
    root = tmp_path / "proj"
    write(
        root / "pyproject.toml",
        """
        [project]
        name = "demo"

        [tool.dbnd.run]
        data_root = "pp_data"

        [tool.dbnd.prepare_data]
        raw_data = "data/from_pyproject.csv"
        rows = 3
        """,
    )
    write(
        root / "dbnd.toml",
        """
        # project settings
        [prepare_data]
        raw_data = "data/from_dbnd_toml.csv"

        [env.prod]
        data_root = "s3://bucket/root"
        work_pool = "k8s-pool"
        """,
    )
    return root


@pytest.fixture(autouse=True)
def _fresh_cache():
    reset_config_cache()
    yield
    reset_config_cache()


# ----- layers against each other -----------------------------------------------------------------


def test_defaults_alone(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path, environ={})
    assert config.get_value("run", "data_root") == ConfigValue("data", "default", "default")
    assert config.get("run", "env") == "local"
    assert config.get("run", "modules") == []
    assert config.get("run", "verify") == "fast"
    assert config.get("prepare_data", "raw_data") is None
    assert config.get("prepare_data", "raw_data", "fallback") == "fallback"


def test_pyproject_beats_defaults_and_keeps_toml_types(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        """
        [tool.dbnd.run]
        data_root = "pp_data"

        [tool.dbnd.prepare_data]
        rows = 3
        """,
    )
    config = load_config(cwd=tmp_path, environ={})
    assert config.get_value("run", "data_root") == ConfigValue("pp_data", "project", "pyproject.toml:2")
    assert config.get_value("prepare_data", "rows") == ConfigValue(3, "project", "pyproject.toml:5")


def test_dbnd_toml_beats_pyproject_in_same_directory(project: Path) -> None:
    config = load_config(cwd=project, environ={})
    assert config.get_value("prepare_data", "raw_data") == ConfigValue(
        "data/from_dbnd_toml.csv", "project", "dbnd.toml:3"
    )
    # keys only pyproject sets are still there
    assert config.get_value("prepare_data", "rows") == ConfigValue(3, "project", "pyproject.toml:9")


def test_conf_files_beat_project_and_later_beats_earlier(project: Path) -> None:
    write(project / "conf" / "dev.toml", '[prepare_data]\nraw_data = "dev.csv"\nrows = 10\n')
    write(project / "conf" / "ci.toml", '# ci settings\n[prepare_data]\nraw_data = "ci.csv"\n')
    config = load_config(cwd=project, conf_files=["conf/dev.toml", project / "conf" / "ci.toml"], environ={})
    assert config.get_value("prepare_data", "raw_data") == ConfigValue("ci.csv", "conf-file", "conf/ci.toml:3")
    assert config.get_value("prepare_data", "rows") == ConfigValue(10, "conf-file", "conf/dev.toml:3")


def test_env_beats_conf_file_and_stays_string(project: Path) -> None:
    write(project / "dev.toml", "[prepare_data]\nrows = 10\n")
    environ = {"DBND__PREPARE_DATA__ROWS": "42", "PATH": "/bin", "DBNDX": "ignored"}
    config = load_config(cwd=project, conf_files=["dev.toml"], environ=environ)
    assert config.get_value("prepare_data", "rows") == ConfigValue("42", "env", "env DBND__PREPARE_DATA__ROWS")


def test_env_nested_section_name() -> None:
    config = load_config(cwd=Path("/"), environ={"DBND__ENV__PROD__DATA_ROOT": "gs://b/r"})
    assert config.get_value("env.prod", "data_root") == ConfigValue("gs://b/r", "env", "env DBND__ENV__PROD__DATA_ROOT")


def test_set_beats_env_and_override_beats_set(project: Path) -> None:
    environ = {"DBND__PREPARE_DATA__RAW_DATA": "env.csv", "DBND__PREPARE_DATA__ROWS": "7"}
    config = load_config(
        cwd=project,
        environ=environ,
        set_values=["prepare_data.raw_data=set.csv", "prepare_data.rows=8"],
        override_values=["prepare_data.raw_data=override.csv"],
    )
    assert config.get_value("prepare_data", "raw_data") == ConfigValue(
        "override.csv", "override", "--override prepare_data.raw_data=override.csv"
    )
    assert config.get_value("prepare_data", "rows") == ConfigValue("8", "set", "--set prepare_data.rows=8")
    assert config.overrides_for("prepare_data") == {
        "raw_data": ConfigValue("override.csv", "override", "--override prepare_data.raw_data=override.csv")
    }
    assert config.overrides_for("other_task") == {}


def test_later_set_beats_earlier_set_and_mappings_are_accepted(tmp_path: Path) -> None:
    config = load_config(
        cwd=tmp_path,
        environ={},
        set_values=["train.lr=0.1", {"train.lr": 0.5}, {"train": {"epochs": 3}}],
    )
    assert config.get_value("train", "lr") == ConfigValue(0.5, "set", "--set train.lr=0.5")
    assert config.get_value("train", "epochs") == ConfigValue(3, "set", "--set train.epochs=3")


def test_set_key_without_task_is_rejected_by_load_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={}, set_values=["raw_data=x.csv"])
    assert str(caught.value) == (
        "--set key 'raw_data' names no task (use --set TASK.PARAM=VALUE, e.g. --set prepare_data.raw_data=...)"
    )


def test_explain_shows_winner_and_every_overridden_layer(project: Path) -> None:
    write(project / "dev.toml", '[prepare_data]\nraw_data = "dev.csv"\n')
    config = load_config(
        cwd=project,
        conf_files=["dev.toml"],
        environ={"DBND__PREPARE_DATA__RAW_DATA": "env.csv"},
        set_values=["prepare_data.raw_data=set.csv"],
    )
    assert config.explain("prepare_data.raw_data") == textwrap.dedent(
        """\
        prepare_data.raw_data = 'set.csv'
          set by: set layer, --set prepare_data.raw_data=set.csv
          overrides: env layer, env DBND__PREPARE_DATA__RAW_DATA = 'env.csv'
          overrides: conf-file layer, dev.toml:2 = 'dev.csv'
          overrides: project layer, dbnd.toml:3 = 'data/from_dbnd_toml.csv'
          overrides: project layer, pyproject.toml:8 = 'data/from_pyproject.csv'
          note: an explicit argument at the call site beats this value; only --override beats that"""
    )


def test_explain_default_override_and_unset(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path, environ={}, override_values=["run.verify=full"])
    assert config.explain("run.data_root") == (
        "run.data_root = 'data'\n  set by: default layer, default\n  overrides: nothing (no lower layer sets it)"
    )
    assert config.explain("run.verify") == (
        "run.verify = 'full'\n"
        "  set by: override layer, --override run.verify=full\n"
        "  overrides: default layer, default = 'fast'"
    )
    assert config.explain("train.lr") == (
        "train.lr is not set by any layer (default, project, conf-file, env, set, override)"
    )
    with pytest.raises(ConfigError, match="config key 'lr' does not name a setting"):
        config.explain("lr")


def test_explain_hides_credentials(tmp_path: Path) -> None:
    config = load_config(
        cwd=tmp_path,
        environ={"DBND__WAREHOUSE__PASSWORD": "hunter2"},
        set_values=["load.src=s3://AKIAKEY:topsecret@bucket/x.csv"],
    )
    text = config.explain("load.src") + config.explain("warehouse.password")
    assert "topsecret" not in text and "AKIAKEY" not in text and "hunter2" not in text
    assert "load.src = 's3://***@bucket/x.csv'" in text
    assert "warehouse.password = '***'" in text
    # the value itself is intact for the code that uses it
    assert config.get("load", "src") == "s3://AKIAKEY:topsecret@bucket/x.csv"


# ----- finding project files ---------------------------------------------------------------------


def test_walks_up_to_first_directory_with_a_project_file(project: Path) -> None:
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    assert find_project_files(deep) == [project / "pyproject.toml", project / "dbnd.toml"]
    config = load_config(cwd=deep, environ={})
    assert config.get_value("prepare_data", "raw_data").source == f"{project / 'dbnd.toml'}:3"


def test_walk_stops_at_nearest_directory_even_without_tool_dbnd(project: Path) -> None:
    inner = project / "sub"
    write(inner / "pyproject.toml", '[project]\nname = "inner"\n')
    config = load_config(cwd=inner, environ={})
    assert config.get("prepare_data", "raw_data") is None
    assert config.get("run", "data_root") == "data"


# ----- provenance lines --------------------------------------------------------------------------


def test_line_numbers_for_dotted_quoted_inline_and_after_multiline_strings(tmp_path: Path) -> None:
    write(
        tmp_path / "dbnd.toml",
        '''
        [prepare_data]
        note = """
        raw_data = "not a key, inside a string"
        """
        raw_data = "data/raw.csv"   # the real one

        [train]
        "learning rate" = 0.1
        opts = { depth = 3 }
        model.kind = "tree"

        [formats]
        pandas.DataFrame = "csv"
        "dict" = "yaml"

        [env."prod"]
        data_root = "s3://b"
        ''',
    )
    config = load_config(cwd=tmp_path, environ={})
    sources = {
        (section, key): value.source
        for section in config.sections()
        for key, value in config.section(section).items()
        if value.layer == "project"
    }
    assert sources == {
        ("prepare_data", "note"): "dbnd.toml:2",
        ("prepare_data", "raw_data"): "dbnd.toml:5",
        ("train", "learning rate"): "dbnd.toml:8",
        ("train.opts", "depth"): "dbnd.toml:9",
        ("train.model", "kind"): "dbnd.toml:10",
        ("formats", "pandas.DataFrame"): "dbnd.toml:13",
        ("formats", "dict"): "dbnd.toml:14",
        ("env.prod", "data_root"): "dbnd.toml:17",
    }


def test_pyproject_dotted_keys_under_tool_dbnd(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        """
        [tool.black]
        line-length = 100

        [tool.dbnd]
        prepare_data.raw_data = "a.csv"
        """,
    )
    config = load_config(cwd=tmp_path, environ={})
    assert config.get_value("prepare_data", "raw_data") == ConfigValue("a.csv", "project", "pyproject.toml:5")


# ----- file errors -------------------------------------------------------------------------------


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "dbnd.toml", '[prepare_data]\nraw_data = "a.csv"\nrows 3\n')
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={})
    message = str(caught.value)
    assert message.startswith("dbnd.toml:3: invalid TOML: ")
    assert "(at line 3, column" in message
    assert message.endswith("(fix the syntax at that line)")
    assert "\n" not in message


def test_missing_conf_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={}, conf_files=["nope.toml"])
    assert str(caught.value) == "configuration file not found: nope.toml (check the --conf-file path)"


def test_key_outside_any_section(tmp_path: Path) -> None:
    write(tmp_path / "dbnd.toml", '# misplaced\ndata_root = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={})
    assert str(caught.value) == (
        "dbnd.toml:2: key 'data_root' is outside any section "
        "(put it under a [SECTION] table, e.g. [run] or the task's name)"
    )


def test_malformed_env_variable_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={"DBND__RAW_DATA": "x"})
    assert str(caught.value) == (
        "environment variable DBND__RAW_DATA does not name a setting "
        "(use DBND__SECTION__KEY=value, e.g. DBND__PREPARE_DATA__RAW_DATA=data/raw.csv)"
    )


# ----- parse_set ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prepare_data.raw_data=s3://b/raw.csv", {"prepare_data.raw_data": "s3://b/raw.csv"}),
        ("train.query=a=b", {"train.query": "a=b"}),
        ("train.name=", {"train.name": ""}),
        ("raw_data=x.csv", {"raw_data": "x.csv"}),
        ("env.prod.data_root=gs://b", {"env.prod.data_root": "gs://b"}),
        (
            '{"train.lr": 0.1, "train.flag": true, "train.ids": [1, 2], "train.name": "x", "n": null}',
            {"train.lr": "0.1", "train.flag": "true", "train.ids": "[1, 2]", "train.name": "x", "n": "null"},
        ),
    ],
)
def test_parse_set_forms(text: str, expected: dict[str, str]) -> None:
    assert parse_set(text) == expected


FORM = "(expected --set TASK.PARAM=VALUE or a JSON object like '{\"task.param\": 1}')"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("raw_data", "invalid --set value 'raw_data': missing '='"),
        ("=x", "invalid --set value '=x': bad key ''"),
        ("task..p=1", "invalid --set value 'task..p=1': bad key 'task..p'"),
        ("my task.p=1", "invalid --set value 'my task.p=1': bad key 'my task.p'"),
        ('{"a.b": 1', "invalid --set value '{\"a.b\": 1': not valid JSON (Expecting ',' delimiter)"),
        ('{"a b": 1}', "invalid --set value '{\"a b\": 1}': bad key 'a b'"),
    ],
)
def test_parse_set_errors_show_expected_form(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_set(text)
    assert str(caught.value) == f"{message} {FORM}"


def test_json_set_through_load_config(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path, environ={}, set_values=['{"train.lr": 0.1}'])
    assert config.get_value("train", "lr") == ConfigValue("0.1", "set", "--set train.lr=0.1")


# ----- checks and typed run section --------------------------------------------------------------


def test_unknown_task_key_names_file_line_and_suggests(project: Path) -> None:
    config = load_config(cwd=project, environ={})
    check_task_section(config, "prepare_data", ["raw_data", "rows"])  # all valid: no error
    with pytest.raises(ConfigError) as caught:
        check_task_section(config, "prepare_data", ["raw_date", "limit"])
    assert str(caught.value) == (
        "unknown parameter prepare_data.raw_data at dbnd.toml:3; did you mean 'raw_date'? "
        "(parameters of prepare_data: raw_date, limit)"
    )


def test_unknown_task_key_without_close_match(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path, environ={}, set_values=["train.zzz=1"])
    with pytest.raises(ConfigError) as caught:
        check_task_section(config, "train", ["learning_rate"])
    assert str(caught.value) == (
        "unknown parameter train.zzz at --set train.zzz=1 (parameters of train: learning_rate)"
    )


def test_unknown_run_key_suggests(tmp_path: Path) -> None:
    write(tmp_path / "dbnd.toml", '[run]\ndata_rot = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={})
    assert str(caught.value) == (
        "unknown key run.data_rot at dbnd.toml:2; did you mean 'data_root'? "
        "(valid run keys: data_root, storage_block, env, modules, task_version, task_target_date, verify, input_fingerprint, api, allow_foreign_pickle, serialize, lock_expiry, lock_wait)"
    )


def test_invalid_run_value_names_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path, environ={"DBND__RUN__VERIFY": "quick"})
    assert str(caught.value) == (
        "invalid run.verify = 'quick' at env DBND__RUN__VERIFY: Input should be 'fast' or 'full' "
        "(fix the value at env DBND__RUN__VERIFY)"
    )


def test_run_settings_typed(tmp_path: Path) -> None:
    write(tmp_path / "dbnd.toml", "[run]\ntask_version = 2\n")
    config = load_config(cwd=tmp_path, environ={"DBND__RUN__MODULES": "flows.a, flows.b"})
    settings = run_settings(config)
    assert settings.modules == ["flows.a", "flows.b"]
    assert settings.task_version == "2"
    assert settings.data_root == "data"
    assert settings.verify == "fast"


# ----- environment profiles ----------------------------------------------------------------------


def test_env_profiles(project: Path) -> None:
    config = load_config(cwd=project, environ={})
    assert active_env(config) == "local"
    assert env_section(config, "local") == {}
    assert env_section(config, "prod") == {
        "data_root": ConfigValue("s3://bucket/root", "project", "dbnd.toml:6"),
        "work_pool": ConfigValue("k8s-pool", "project", "dbnd.toml:7"),
    }
    assert run_settings(config).data_root == "pp_data"

    prod = load_config(cwd=project, environ={"DBND__RUN__ENV": "prod"})
    assert active_env(prod) == "prod"
    # the profile beats [run] from the project files ...
    assert run_settings(prod).data_root == "s3://bucket/root"
    # ... but not a --set of run.data_root
    pinned = load_config(cwd=project, environ={"DBND__RUN__ENV": "prod"}, set_values=["run.data_root=/tmp/x"])
    assert run_settings(pinned).data_root == "/tmp/x"


def test_unknown_env_lists_known_profiles(project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=project, environ={}, set_values=["run.env=prdo"])
    assert str(caught.value) == (
        "unknown environment 'prdo' (from --set run.env=prdo); did you mean 'prod'? "
        "(known profiles: docker, k8s, local, prod; define others as [env.NAME] tables)"
    )
    config = load_config(cwd=project, environ={})
    with pytest.raises(ConfigError) as caught:
        env_section(config, "staging")
    assert str(caught.value) == (
        "unknown environment 'staging' (known profiles: docker, k8s, local, prod; define others as [env.NAME] tables)"
    )


# ----- task defaults -----------------------------------------------------------------------------


def test_task_values_merge_task_section_by_layer(tmp_path: Path) -> None:
    write(tmp_path / "dbnd.toml", "[task]\nretries = 1\nlimit = 5\n\n[train]\nretries = 3\n")
    config = load_config(cwd=tmp_path, environ={}, set_values=["task.limit=9"])
    merged = task_values(config, "train")
    assert merged["retries"] == ConfigValue(3, "project", "dbnd.toml:6")
    assert merged["limit"] == ConfigValue("9", "set", "--set task.limit=9")
    assert task_values(config, "other") == {
        "retries": ConfigValue(1, "project", "dbnd.toml:2"),
        "limit": ConfigValue("9", "set", "--set task.limit=9"),
    }
    override = load_config(cwd=tmp_path, environ={}, set_values=["task.retries=0"])
    assert task_values(override, "train")["retries"].value == "0"


# ----- the DbndConfig object ---------------------------------------------------------------------


def test_with_layer_returns_new_config_and_respects_layer_order(tmp_path: Path) -> None:
    base = load_config(cwd=tmp_path, environ={}, override_values=["train.lr=0.9"])
    changed = base.with_layer("set", {"train": {"lr": 0.1, "epochs": 2}}, "notebook")
    assert base.get("train", "epochs") is None
    assert changed.get_value("train", "epochs") == ConfigValue(2, "set", "notebook")
    # added later but in a lower layer: the override still wins
    assert changed.get_value("train", "lr") == ConfigValue("0.9", "override", "--override train.lr=0.9")
    assert changed.as_dict()["train"] == {"lr": "0.9", "epochs": 2}
    assert changed.sections() == ["run", "train"]
    with pytest.raises(ConfigError, match="call-site arguments are not stored"):
        base.with_layer("call-site", {"train.lr": 1}, "code")
    with pytest.raises(ConfigError, match="unknown configuration layer 'cli'"):
        base.with_layer("cli", {"train.lr": 1}, "code")
    with pytest.raises(AttributeError, match="immutable"):
        base.extra = 1  # type: ignore[attr-defined]


# ----- current config and config_context ---------------------------------------------------------


def test_current_config_loads_project_of_cwd_once(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    first = current_config()
    assert first.get("prepare_data", "raw_data") == "data/from_dbnd_toml.csv"
    write(project / "dbnd.toml", '[prepare_data]\nraw_data = "changed.csv"\n')
    assert current_config() is first
    reset_config_cache()
    assert current_config().get("prepare_data", "raw_data") == "changed.csv"


def test_config_context_nests_and_restores(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    with config_context({"prepare_data.raw_data": "outer.csv"}) as outer:
        assert current_config() is outer
        assert outer.get_value("prepare_data", "raw_data") == ConfigValue("outer.csv", "set", "config_context")
        assert outer.get("prepare_data", "rows") == 3  # project values underneath
        with config_context(train={"lr": 0.5}):
            inner = current_config()
            assert inner.get("train", "lr") == 0.5
            assert inner.get("prepare_data", "raw_data") == "outer.csv"
        assert current_config().get("train", "lr") is None
    assert current_config().get("prepare_data", "raw_data") == "data/from_dbnd_toml.csv"


def test_config_context_with_whole_config(tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_config(cwd=project, environ={}, set_values=["prepare_data.rows=9"])
    with config_context(loaded) as active:
        assert active is loaded
        assert current_config().get("prepare_data", "rows") == "9"
    with config_context(loaded, run={"verify": "full"}):
        assert run_settings(current_config()).verify == "full"
    with pytest.raises(ConfigError, match="unknown key run.verfy at config_context; did you mean 'verify'"):
        with config_context(run={"verfy": "full"}):
            pass


def test_importing_config_loads_no_heavy_libraries() -> None:
    code = (
        "import sys, dbnd_prefect.config\n"
        "heavy = {'pandas', 'pyarrow', 'boto3', 's3fs'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent.parent, check=True
    )
    assert result.stdout.strip() == "[]"


def test_dbnd_config_repr() -> None:
    assert repr(DbndConfig()) == "DbndConfig(0 values in 0 sections)"
