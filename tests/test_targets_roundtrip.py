"""Every type x format round trip through real files (local and memory://), with compression."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import pickle
import uuid
import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from dbnd_prefect.targets import Target

COMPRESSIONS = ["", ".gz", ".bz2", ".xz", ".zip"]


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [0.5, 1.25, -3.0],
            "s": ["a", "b c", "ü"],
            "when": pd.to_datetime(["2024-01-01 10:00:00", "2024-02-29 00:00:00", "2025-12-31 23:59:59"]),
            "ok": [True, False, True],
        }
    )


@dataclass
class Thing:  # an arbitrary object: only pickle can store it
    name: str
    sizes: tuple[int, ...]


def location(tmp_path, where: str, name: str) -> str:
    if where == "local":
        return str(tmp_path / "sub" / name)
    return f"memory://dbnd-tests-{uuid.uuid4().hex[:8]}/sub/{name}"


@pytest.fixture(params=["local", "memory"])
def where(request):
    return request.param


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("ext", ["parquet", "feather", "pkl"])
def test_dataframe_round_trips_exactly_in_binary_formats(tmp_path, where, ext, compression):
    df = frame()
    target = Target(location(tmp_path, where, f"df.{ext}{compression}"))
    info = target.save(df)
    pd.testing.assert_frame_equal(target.load(pd.DataFrame), df)
    assert info["rows"] == 3
    assert info["schema"] == {"i": "int64", "f": "float64", "s": "str", "when": "datetime64[us]", "ok": "bool"}


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("ext,options", [
    ("csv", {"parse_dates": ["when"]}),
    ("tsv", {"parse_dates": ["when"]}),
    ("json", {"convert_dates": ["when"]}),
    ("jsonl", {"convert_dates": ["when"]}),
])
def test_dataframe_round_trips_in_text_formats_with_date_options(tmp_path, where, ext, options, compression):
    df = frame()
    target = Target(location(tmp_path, where, f"df.{ext}{compression}"))
    target.save(df)
    back = target.load(pd.DataFrame, **options)
    # text formats carry no time unit: compare datetimes by value
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back["when"].dtype.kind == "M"
    assert back["ok"].dtype == bool and back["i"].dtype == "int64"


@pytest.mark.parametrize("compression", ["", ".gz"])
@pytest.mark.parametrize("ext", ["parquet", "feather", "csv", "json", "pkl"])
def test_series_round_trips(tmp_path, where, ext, compression):
    series = pd.Series([1.5, 2.5, None], name="score")
    target = Target(location(tmp_path, where, f"s.{ext}{compression}"))
    info = target.save(series)
    back = target.load(pd.Series)
    assert isinstance(back, pd.Series)
    pd.testing.assert_series_equal(back, series, check_index_type=False)
    assert info["rows"] == 3 and info["schema"] == {"score": "float64"}


def test_unnamed_series_is_stored_as_a_value_column(tmp_path):
    target = Target(tmp_path / "s.parquet")
    target.save(pd.Series([1, 2, 3]))
    assert pq.read_table(target.path).column_names == ["value"]
    assert target.load(pd.Series).tolist() == [1, 2, 3]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("ext", ["npy", "pkl"])
def test_ndarray_round_trips(tmp_path, where, ext, compression):
    arr = np.arange(12, dtype="float32").reshape(3, 4)
    target = Target(location(tmp_path, where, f"a.{ext}{compression}"))
    info = target.save(arr)
    back = target.load(np.ndarray)
    np.testing.assert_array_equal(back, arr)
    assert back.dtype == np.float32
    assert info["rows"] == 3 and info["shape"] == [3, 4]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("value,ext", [
    ({"a": 1, "nested": {"b": [1, 2.5, None]}, "text": "ü"}, "json"),
    ([1, "two", {"three": 3}], "json"),
    ([{"a": 1}, {"a": 2, "b": "x"}], "jsonl"),
    ("line one\nline two\r\nünïcode\n", "txt"),
    ({"k": (1, 2), "s": {3}}, "pkl"),
    (Thing("t", (1, 2)), "pkl"),
    (b"\x00\x01raw", "pkl"),
])
def test_python_objects_round_trip(tmp_path, where, value, ext, compression):
    target = Target(location(tmp_path, where, f"obj.{ext}{compression}"))
    info = target.save(value)
    assert target.load(type(value)) == value
    if ext != "jsonl":  # jsonl's own type is a DataFrame (see test_jsonl_loads_as_dataframe_or_list)
        assert target.load() == value  # the format's own type when none is asked
    assert "rows" not in info


def test_jsonl_loads_as_dataframe_or_list(tmp_path):
    target = Target(tmp_path / "rows.jsonl")
    target.save([{"a": 1}, {"a": 2}])
    assert target.load(list) == [{"a": 1}, {"a": 2}]
    assert target.load(pd.DataFrame)["a"].tolist() == [1, 2]
    assert (tmp_path / "rows.jsonl").read_text() == '{"a": 1}\n{"a": 2}\n'


def test_json_loads_as_dict_or_dataframe_by_requested_type(tmp_path):
    target = Target(tmp_path / "records.json")
    target.save([{"x": 1, "y": "a"}, {"x": 2, "y": "b"}])
    assert target.load(list) == [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]
    assert target.load(pd.DataFrame)["y"].tolist() == ["a", "b"]


def test_forced_format_ignores_the_extension(tmp_path):
    target = Target(tmp_path / "data.bin", format="parquet")
    target.save(frame())
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "data.bin"), frame())
    pd.testing.assert_frame_equal(Target(tmp_path / "data.bin", format="parquet").load(), frame())


def test_forced_format_keeps_compression_from_the_suffix(tmp_path):
    target = Target(tmp_path / "export.dat.gz", format="csv")
    assert target.compression == "gzip"
    target.save(frame()[["i"]])
    assert gzip.decompress((tmp_path / "export.dat.gz").read_bytes()).decode() == "i\n1\n2\n3\n"


def test_load_and_save_options_reach_pandas(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("a;b\n1;x\n2;y\n")
    assert Target(path).load(pd.DataFrame, sep=";").to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
    assert Target(path, load_options={"sep": ";"}).load()["b"].tolist() == ["x", "y"]
    out = Target(tmp_path / "out.csv", save_options={"sep": ";"})
    out.save(pd.DataFrame({"a": [1], "b": ["x"]}))
    assert (tmp_path / "out.csv").read_text() == "a;b\n1;x\n"


def test_csv_keeps_a_meaningful_index_and_drops_a_default_one(tmp_path):
    Target(tmp_path / "plain.csv").save(pd.DataFrame({"a": [1, 2]}))
    assert (tmp_path / "plain.csv").read_text() == "a\n1\n2\n"
    Target(tmp_path / "indexed.csv").save(pd.DataFrame({"a": [1, 2]}, index=pd.Index(["x", "y"], name="k")))
    assert (tmp_path / "indexed.csv").read_text() == "k,a\nx,1\ny,2\n"


# --- files open with plain libraries -----------------------------------------------------------------


def test_saved_files_open_with_plain_libraries(tmp_path):
    df = frame()
    Target(tmp_path / "d.parquet").save(df)
    Target(tmp_path / "d.feather").save(df)
    Target(tmp_path / "d.csv").save(df)
    Target(tmp_path / "a.npy").save(np.eye(3))
    Target(tmp_path / "o.json").save({"a": [1, 2]})
    Target(tmp_path / "d.json").save(df)
    Target(tmp_path / "t.txt").save("hello\n")
    Target(tmp_path / "p.pkl").save(Thing("x", (1,)))

    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "d.parquet"), df)
    assert pq.read_table(tmp_path / "d.parquet").num_rows == 3
    pd.testing.assert_frame_equal(feather.read_feather(tmp_path / "d.feather"), df)
    plain_csv = pd.read_csv(tmp_path / "d.csv", parse_dates=["when"])
    pd.testing.assert_frame_equal(plain_csv, df, check_dtype=False)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.eye(3))
    assert json.loads((tmp_path / "o.json").read_text()) == {"a": [1, 2]}
    assert json.loads((tmp_path / "d.json").read_text())[1] == {
        "i": 2, "f": 1.25, "s": "b c", "when": "2024-02-29T00:00:00.000", "ok": False
    }
    assert (tmp_path / "t.txt").read_bytes() == b"hello\n"
    assert pickle.loads((tmp_path / "p.pkl").read_bytes()) == Thing("x", (1,))


@pytest.mark.parametrize("suffix,opener", [
    (".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open),
])
def test_compressed_files_open_with_standard_decompressors(tmp_path, suffix, opener):
    Target(tmp_path / f"d.csv{suffix}").save(pd.DataFrame({"a": [1, 2]}))
    with opener(tmp_path / f"d.csv{suffix}", "rt") as f:
        assert f.read() == "a\n1\n2\n"
    assert pd.read_csv(tmp_path / f"d.csv{suffix}")["a"].tolist() == [1, 2]


def test_zip_holds_one_member_readable_by_pandas(tmp_path):
    Target(tmp_path / "d.csv.zip").save(pd.DataFrame({"a": [1, 2]}))
    with zipfile.ZipFile(tmp_path / "d.csv.zip") as z:
        assert len(z.namelist()) == 1
        assert z.read(z.namelist()[0]) == b"a\n1\n2\n"
    assert pd.read_csv(tmp_path / "d.csv.zip")["a"].tolist() == [1, 2]


def test_open_reads_decompressed_bytes_and_text(tmp_path):
    target = Target(tmp_path / "notes.txt.gz")
    target.save("ünï\nline\n")
    with target.open() as f:
        assert f.read() == "ünï\nline\n".encode()
    with target.open("r") as f:
        assert f.read() == "ünï\nline\n"


def test_writer_streams_an_atomic_file(tmp_path):
    target = Target(tmp_path / "log.txt.bz2")
    with target.writer("w") as f:
        f.write("first\n")
        assert not (tmp_path / "log.txt.bz2").exists()  # nothing visible until the block ends
        f.write("second\n")
    assert bz2.decompress((tmp_path / "log.txt.bz2").read_bytes()) == b"first\nsecond\n"
    assert target.load() == "first\nsecond\n"
