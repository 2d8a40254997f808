"""Format registry: type keys, defaults, extension lookup, compression, and user-registered formats."""

from __future__ import annotations

import collections
import typing
from typing import Any, Optional

import numpy as np
import pandas as pd
import pytest

from dbnd_prefect.errors import FormatError
from dbnd_prefect.targets import (
    Format,
    Target,
    default_format_for,
    format_for_uri,
    get_format,
    register_format,
    type_key,
)
from dbnd_prefect.targets.formats import compression_suffixes


class MyFrame(pd.DataFrame):
    pass


@pytest.mark.parametrize("value,expected", [
    (pd.DataFrame, "pandas.DataFrame"),
    (pd.DataFrame({"a": [1]}), "pandas.DataFrame"),
    (MyFrame, "pandas.DataFrame"),
    (pd.Series, "pandas.Series"),
    (np.ndarray, "numpy.ndarray"),
    (np.zeros(2), "numpy.ndarray"),
    (dict, "dict"), ({"a": 1}, "dict"), (collections.OrderedDict, "dict"),
    (list, "list"), (list[int], "list"), (typing.List[str], "list"),
    (str, "str"), (bytes, "bytes"), (b"x", "bytes"),
    (Optional[pd.DataFrame], "pandas.DataFrame"), (pd.Series | None, "pandas.Series"),
    (typing.Annotated[pd.DataFrame, "meta"], "pandas.DataFrame"),
    (typing.Union[dict, list], "object"),
    (Any, "object"), (None, "object"), (object, "object"), (complex, "object"),
    ("pandas.DataFrame", "pandas.DataFrame"), ("pandas.core.frame.DataFrame", "pandas.DataFrame"),
    ("dict", "dict"), ("just some text", "str"),
])
def test_type_key(value, expected):
    assert type_key(value) == expected


@pytest.mark.parametrize("key,fmt", [
    ("pandas.DataFrame", "parquet"), ("pandas.Series", "parquet"), ("str", "txt"),
    ("dict", "json"), ("list", "json"), ("numpy.ndarray", "npy"), ("object", "pickle"), ("bytes", "pickle"),
])
def test_default_format_for(key, fmt):
    assert default_format_for(key) == fmt
    assert get_format(fmt).can_save(key)


@pytest.mark.parametrize("uri,fmt,compression", [
    ("/d/x.csv", "csv", None),
    ("/d/x.CSV", "csv", None),
    ("s3://b/k/x.csv.gz", "csv", "gzip"),
    ("x.json.bz2", "json", "bz2"),
    ("x.jsonl", "jsonl", None),
    ("x.ndjson.xz", "jsonl", "xz"),
    ("gs://b/part.v2.parquet", "parquet", None),
    ("x.tsv.zip", "tsv", "zip"),
    ("x.feather", "feather", None),
    ("x.pkl", "pickle", None),
    ("x.npy", "npy", None),
    ("https://host/x.csv?token=abc", "csv", None),
])
def test_format_for_uri(uri, fmt, compression):
    found, comp = format_for_uri(uri)
    assert (found.name, comp) == (fmt, compression)


def test_forced_format_wins_over_extension():
    assert format_for_uri("x.csv", forced="parquet")[0].name == "parquet"
    assert format_for_uri("noext", forced="json") == (get_format("json"), None)


def test_unknown_extension_and_missing_extension():
    with pytest.raises(FormatError, match=r"'s3://b/data' from its extension '\(none\)'"):
        format_for_uri("s3://b/data")
    with pytest.raises(FormatError, match=r"extension '\.gz'"):
        format_for_uri("x.gz")  # compression alone does not say the format


def test_zstd_suffix():
    if ".zst" in compression_suffixes():
        target_fmt, comp = format_for_uri("x.csv.zst")
        assert (target_fmt.name, comp) == ("csv", "zstd")
    else:
        with pytest.raises(FormatError, match=r"\.zst compression codec is not installed \(pip install zstandard\)"):
            format_for_uri("x.csv.zst")


def test_format_refuses_types_it_cannot_hold():
    parquet = get_format("parquet")
    assert parquet.can_save("pandas.DataFrame") and not parquet.can_save("dict")
    assert parquet.can_load("pandas.Series") and not parquet.can_load("list")
    with pytest.raises(FormatError, match="format 'parquet' cannot save dict"):
        parquet.save({"a": 1}, None)
    with pytest.raises(FormatError, match="format 'npy' cannot load pandas.DataFrame"):
        get_format("npy").load(None, "pandas.DataFrame")


def test_user_registered_format_is_used_by_targets(tmp_path):
    def load(f, tk, upper=False):
        rows = [line.split("=", 1) for line in f.read().splitlines()]
        return {k: (v.upper() if upper else v) for k, v in rows}

    def save(obj, f):
        for k, v in obj.items():
            f.write(f"{k}={v}\n")

    register_format(Format("props", (".props",), load, save, binary=False,
                           load_types=("dict",), save_types=("dict",)))
    try:
        target = Target(tmp_path / "app.props.gz")
        info = target.save({"a": "x", "b": "y"})
        assert info["format"] == "props" and info["compression"] == "gzip"
        assert target.load() == {"a": "x", "b": "y"}
        assert target.load(dict, upper=True) == {"a": "X", "b": "Y"}
        with pytest.raises(FormatError, match="format 'props' cannot save list"):
            target.save([1, 2])
    finally:
        # re-registering under the same name replaces the format and its extensions
        register_format(Format("props", (".properties",), load, save, binary=False))
    with pytest.raises(FormatError, match="from its extension '.props'"):
        format_for_uri("x.props")
    assert format_for_uri("x.properties")[0].name == "props"


def test_unknown_format_name():
    with pytest.raises(FormatError, match="unknown format 'excel' .*known formats: csv"):
        get_format("excel")


def test_format_names_are_case_insensitive(tmp_path):
    register_format(Format("UpperText", (".utxt",), lambda f, tk: f.read().upper(), lambda o, f: f.write(o),
                           binary=False, load_types=("str",), save_types=("str",)))
    assert get_format("uppertext") is get_format("UpperText")
    target = Target(tmp_path / "a.dat", format="UPPERTEXT")
    target.save("abc")
    assert target.load() == "ABC"


def test_format_errors_hide_query_strings():
    with pytest.raises(FormatError) as err:
        format_for_uri("https://host/x.xlsx?sig=SECRETVALUE")
    assert "SECRETVALUE" not in str(err.value) and "'https://host/x.xlsx?...'" in str(err.value)
