"""R5: hypothesis fuzzing of the four parsers that read what people type — 10,000 cases each.

`--set` text, URIs (parsing, format and target resolution), TOML configuration files (loaded and validated
as `dbnd` does: run settings, environment profiles) and version selectors (resolved against a data root
holding a real stored version). Whatever the input, the only exceptions allowed out are the library's own
`DbndError`s, which the CLI prints as one line with exit code 2; anything else would be a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pandas import DataFrame

from dbnd_prefect import task
from dbnd_prefect.errors import DbndError

# Each hypothesis example feeds BATCH inputs to the parser: hypothesis spends ~2-4 ms per example on this
# loaded 2-core machine whatever it generates, so 2,000 examples of 5 inputs try 10,000 inputs per parser in
# about a quarter of the time of 10,000 examples of one. DBND_FUZZ_INPUTS raises (or lowers) the count.
INPUTS = int(os.environ.get("DBND_FUZZ_INPUTS", "10000"))
BATCH = 20
FUZZ = settings(max_examples=max(1, INPUTS // BATCH), deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def batch(strategy: st.SearchStrategy) -> st.SearchStrategy[list]:
    return st.lists(strategy, min_size=BATCH, max_size=BATCH)


# text that looks like what people type, plus the characters parsers split on
PUNCTUATION = "=.:/@{}[]\"',;#%?&*\\ \t-_+~$"
typed = st.text(alphabet=st.sampled_from(string.ascii_letters + string.digits + PUNCTUATION), max_size=40)
anything = st.text(max_size=60)  # any unicode, control characters and lone surrogates included
# JSON values drawn from a list (hypothesis draws from a list much faster than it builds nested values)
json_values = st.sampled_from([None, True, False, 0, -7, 2**70, 1.5, float("inf"), float("nan"), "", "x=y", "ä",
                               "s3://b/k.csv", [], [1, "a", None], {}, {"p": 1}, {"p": {"q": [1, {"r": None}]}},
                               {"": 1}, {"a.b": "c"}])


# ----- --set / --override --------------------------------------------------------------------------------

KEYS = st.sampled_from(["task.param", "prepare_data.raw_data", "run.data_root", "env.prod.data_root",
                        "formats.pandas.DataFrame", "value", "", ".", "a..b", "a.", ".b", "x y.z", "ä.b"]) | typed


def set_texts() -> st.SearchStrategy[str]:
    pair = st.builds(lambda k, sep, v: f"{k}{sep}{v}", KEYS, st.sampled_from(["=", "==", " = ", ":", ""]), typed)
    as_json = st.builds(json.dumps, st.dictionaries(KEYS, json_values, max_size=3) | json_values)
    broken_json = as_json.map(lambda text: text[: len(text) // 2])
    return st.one_of(pair, as_json, broken_json, typed, anything)


@FUZZ
@given(texts=batch(set_texts()))
def test_set_parser_raises_only_dbnd_errors(texts):
    from dbnd_prefect.config.inputs import parse_set, set_entries

    for text in texts:
        try:
            parsed = parse_set(text)
            entries = set_entries([text], "--set")
        except DbndError:
            continue
        assert all(isinstance(value, str) for value in parsed.values())
        assert {f"{e.section}.{e.key}" for e in entries} == set(parsed)
        key, _, value = text.partition("=")
        if not text.strip().startswith("{"):
            assert parsed == {key.strip(): value}  # split on the first '=', the value kept as typed


# ----- URIs and targets ----------------------------------------------------------------------------------

SCHEMES = ["", "file://", "s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://", "abfss://", "memory://",
           "https://", "http://", "hdfs://", "nope://", "S3://", "file:", "local://", "simplecache::s3://",
           "zip://", "ftp://", "c:\\", "~/", "/", "./", "../"]
SEGMENT = st.text(alphabet=string.ascii_lowercase + string.digits + "-_. %+=,", max_size=12)
EXTENSIONS = ["", ".csv", ".parquet", ".json", ".jsonl", ".pkl", ".pickle", ".txt", ".npy", ".feather", ".tsv",
              ".csv.gz", ".pkl.bz2", ".json.xz", ".parquet.zst", ".csv.zip", ".xyz", ".gz", ".", "/", ".csv/"]
PASSWORD = "SECRETpw4r5"  # never in a message: only the user info of the URIs below carries it


def uris() -> st.SearchStrategy[str]:
    userinfo = st.sampled_from(["", "user@", f"user:{PASSWORD}@", f":{PASSWORD}@"])
    structured = st.builds(
        lambda scheme, user, parts, ext, query: f"{scheme}{user}{'/'.join(parts)}{ext}{query}",
        st.sampled_from(SCHEMES), userinfo, st.lists(SEGMENT, max_size=4), st.sampled_from(EXTENSIONS),
        st.sampled_from(["", "?versionId=3", f"?sig={PASSWORD}", "#frag"]))
    return st.one_of(structured, typed, anything)


@task
def r5_load(table: DataFrame) -> int:
    return len(table)


FORCED = st.none() | st.sampled_from(["csv", "parquet", "pickle.gz", "pkl.gz", "parkay", ".json", "txt.bz2", ""])


@FUZZ
@given(cases=batch(st.tuples(uris(), FORCED)))
def test_uri_parser_and_target_resolution_raise_only_dbnd_errors(cases):
    from dbnd_prefect.definitions.spec import Data, input_target
    from dbnd_prefect.targets import Target
    from dbnd_prefect.targets.filesystem import redact_uri, split_uri

    for uri, forced in cases:
        try:
            protocol, path = split_uri(uri)
            spec = dataclasses.replace(r5_load.param_map["table"], data=Data(format=forced))
            target = input_target(spec, uri)
            assert isinstance(target, Target) and target.protocol == protocol
            shown = target.shown
            target.format, target.compression  # resolved from the extension, or the forced format
        except DbndError as exc:
            shown = str(exc)
        if "://" in uri and not uri.lower().startswith(("file:", "local:")):  # else '@' is part of a file name
            assert PASSWORD not in redact_uri(uri) and PASSWORD not in shown


# ----- TOML configuration files --------------------------------------------------------------------------

SECTIONS = ["run", "env.prod", "env.prod.task_runner", "env.prod.work_pool", "env.k8s", "env.docker",
            "r5_double", "task", "formats", "tracking", "tool.dbnd.run", "env", "run.more", "a b", "env.\"x.y\""]
CONFIG_KEYS = ["data_root", "env", "modules", "verify", "input_fingerprint", "api", "task_version",
               "task_target_date", "storage_block", "extends", "work_pool", "type", "address", "n_workers",
               "image", "memory", "cpu", "namespace", "volumes", "job_variables", "x", "\"pandas.DataFrame\"",
               "\"quoted key\"", "dotted.key"]
SCALARS = ['"data"', '"s3://bucket/root"', '"nope://x"', '"prod"', '"k8s"', '"dask"', '"fast"', '"full"', '"quick"',
           '"local"', '"http://127.0.0.1:1/api"', '"512Mi"', '"lots"', '"500m"', "2024-01-31", "1979-05-27T07:32:00Z",
           "inf", "nan", '""', '"a:/b:ro"', "'literal'", "0", "-1", "2", "1e999", "true", "false", '"\\u00e9"',
           '["pkg.a", "pkg.b"]', "[1, [2, 3]]", "[]", '{ type = "dask", n_workers = 2 }', '{ name = "pool" }',
           '{ A = "1", B = 2 }', "{}", '"""multi\nline"""', "'''lit\neral'''"]
# A document is a few lines drawn from these (drawing from a list is what hypothesis does fastest), then
# possibly spliced with typed junk.
LINES = ([f"[{section}]" for section in SECTIONS] + [f"[[{section}]]" for section in SECTIONS[:3]]
         + [f"{key} = {value}" for key in CONFIG_KEYS for value in SCALARS] + ["", "# comment", "key", "= 1", "["])


def toml_documents() -> st.SearchStrategy[str]:
    structured = st.lists(st.sampled_from(LINES), max_size=10).map(lambda lines: "\n".join(lines) + "\n")
    mangled = st.builds(lambda doc, cut, junk: doc[:cut] + junk + doc[cut:], structured, st.integers(0, 200), typed)
    return st.one_of(structured, structured, mangled, typed, anything)


@pytest.fixture(scope="module")
def config_dirs() -> Iterator[dict[str, Path]]:
    """A project folder for a dbnd.toml and one for a pyproject.toml, in memory when /dev/shm exists (writing a
    file to /tmp costs ~6 ms on this machine, to /dev/shm 0.05 ms)."""
    root = Path(tempfile.mkdtemp(prefix="dbnd-r5-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    dirs = {name: root / name.partition(".")[0] for name in ("dbnd.toml", "pyproject.toml")}
    for folder in dirs.values():
        folder.mkdir()
    yield dirs
    shutil.rmtree(root, ignore_errors=True)


@FUZZ
@given(documents=batch(st.tuples(toml_documents(), st.sampled_from(["dbnd.toml", "pyproject.toml"]))))
def test_toml_config_loader_raises_only_dbnd_errors(config_dirs, documents):
    from dbnd_prefect.config import load_config

    for text, name in documents:
        folder = config_dirs[name]
        (folder / name).write_text(text.replace("tool.dbnd.", "") if name == "dbnd.toml" else text,
                                   encoding="utf-8", errors="surrogatepass")
        try:
            load_config(cwd=folder, environ={})
        except DbndError:
            pass


# ----- version selectors ---------------------------------------------------------------------------------


@task
def r5_double(x: int = 1) -> int:
    return 2 * x


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[str, str]:
    """A data root holding one stored version of r5_double (a real run); (data root, its flow run id)."""
    from dbnd_prefect.config import reset_config_cache
    from dbnd_prefect.pytest_plugin import run_cmd

    project = tmp_path_factory.mktemp("r5-selectors")
    (project / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        reset_config_cache()
        result = run_cmd(["run", "r5_double", "--set", "x=21"])
        reset_config_cache()
    assert result.exit_code == 0, result.stderr
    return str(project / "data"), str(result.run.flow_run_id)


def selectors(run_id: str) -> st.SearchStrategy[str]:
    tasks = st.sampled_from(["r5_double", "r5_doubl", "other", "_x", "a-b", "9x"]) | typed
    outputs = st.sampled_from(["result", "reslt", "x", "_"]) | typed
    prefixes = st.integers(0, len(run_id)).map(lambda n: run_id[:n])
    which = st.one_of(st.sampled_from(["latest", "run:", "run:0000dead", "run:-", "LATEST", "run:xyz"]),
                      prefixes.map(lambda p: f"run:{p}"), prefixes.map(lambda p: f"run:{p.upper()}"), typed)
    structured = st.builds(lambda t, o, s, sep: f"{t}.{o}{sep}{s}", tasks, outputs, which,
                           st.sampled_from(["@", "@@", "", " @"]))
    return st.one_of(structured, structured, typed, anything)


def test_version_selector_parser_raises_only_dbnd_errors(stored):
    from dbnd_prefect.versioning.selectors import is_selector, resolve_selector

    data_root, run_id = stored
    assert "/r5_double/" in resolve_selector(f"r5_double.result@run:{run_id[:8]}", data_root, "local")

    @FUZZ
    @given(cases=batch(st.tuples(selectors(run_id), st.sampled_from(["local", "prod", "*", "..", ""]))))
    def resolve(cases):
        for value, env in cases:
            try:
                uri = resolve_selector(value, data_root, env)
            except DbndError:
                continue
            assert is_selector(value) and uri.startswith(data_root)

    resolve()
