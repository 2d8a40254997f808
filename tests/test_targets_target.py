"""Target: atomic saves, checksums, fingerprints, metadata, local copies and every error message."""

from __future__ import annotations

import os
import time
import uuid

import pandas as pd
import pytest
import xxhash

from dbnd_prefect.errors import FormatError, TargetError
from dbnd_prefect.targets import Target


def memory_uri(name: str) -> str:
    return f"memory://dbnd-tests-{uuid.uuid4().hex[:8]}/{name}"


class Unserializable:
    pass


# --- identity -------------------------------------------------------------------------------------------


def test_uri_is_normalized_and_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = Target("data/in.csv")
    assert target.uri == str(tmp_path / "data" / "in.csv")
    assert str(target) == repr(target) == target.uri
    assert Target(f"file://{tmp_path}/x.csv").uri == str(tmp_path / "x.csv")
    assert target.protocol == "file" and target.format.name == "csv" and target.compression is None
    remote = Target("memory://bucket/dir/x.json.gz")
    assert (remote.uri, remote.protocol, remote.path) == ("memory://bucket/dir/x.json.gz", "memory", "/bucket/dir/x.json.gz")
    assert (remote.format.name, remote.compression) == ("json", "gzip")


def test_fspath_only_for_local_files(tmp_path):
    target = Target(tmp_path / "t.txt")
    target.save("hi")
    with open(target) as f:
        assert f.read() == "hi"
    with pytest.raises(TypeError, match="not a local file"):
        os.fspath(Target("memory://b/t.txt"))


# --- atomic save ------------------------------------------------------------------------------------------


def test_failing_save_leaves_no_file_and_no_temp_file(tmp_path):
    target = Target(tmp_path / "out" / "result.json")
    # json.dump streams the big string out before reaching the value it cannot encode
    with pytest.raises(TargetError) as err:
        target.save({"big": "x" * 200_000, "bad": Unserializable()})
    message = str(err.value)
    assert f"cannot write '{target.uri}' as json" in message
    assert "TypeError" in message and "nothing was written" in message
    assert list((tmp_path / "out").iterdir()) == []


def test_failing_save_keeps_the_older_file_intact(tmp_path):
    path = tmp_path / "result.json"
    target = Target(path)
    target.save({"version": 1})
    before = path.read_bytes()
    with pytest.raises(TargetError):
        target.save({"big": list(range(50_000)), "bad": Unserializable()})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    assert target.load() == {"version": 1}


def test_failing_save_to_memory_store_leaves_nothing(tmp_path):
    target = Target(memory_uri("r.json"))
    with pytest.raises(TargetError, match="cannot write 'memory://"):
        target.save({"big": "x" * 100_000, "bad": Unserializable()})
    assert not target.exists()
    target.save({"ok": True})
    with pytest.raises(TargetError):
        target.save({"big": "x" * 100_000, "bad": Unserializable()})
    assert target.load() == {"ok": True}


def test_failing_dataframe_save_leaves_nothing(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "mixed": [Unserializable(), Unserializable()]})
    target = Target(tmp_path / "df.parquet")
    with pytest.raises(TargetError, match="as parquet"):
        target.save(frame)
    assert list(tmp_path.iterdir()) == []


def test_temp_file_lives_beside_the_target_until_the_write_ends(tmp_path):
    target = Target(tmp_path / "deep" / "er" / "f.txt")
    with target.writer("w") as f:
        f.write("partial")
        f.flush()
        names = os.listdir(tmp_path / "deep" / "er")
        assert len(names) == 1 and names[0].startswith(".f.txt.") and names[0].endswith(".tmp")
    assert os.listdir(tmp_path / "deep" / "er") == ["f.txt"]


def test_exception_in_writer_block_leaves_nothing(tmp_path):
    target = Target(tmp_path / "f.csv.gz")
    with pytest.raises(RuntimeError):
        with target.writer() as f:
            f.write(b"a,b\n")
            raise RuntimeError("task body failed")
    assert list(tmp_path.iterdir()) == []


def test_saved_file_has_default_permissions(tmp_path):
    path = tmp_path / "f.txt"
    Target(path).save("x")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# --- checksums and fingerprints ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["d.parquet", "d.csv.gz", "d.json.zip"])
def test_save_checksum_matches_the_stored_bytes(tmp_path, name):
    target = Target(tmp_path / name)
    info = target.save(pd.DataFrame({"a": range(1000), "b": ["x"] * 1000}))
    stored = (tmp_path / name).read_bytes()
    assert info["checksum"] == xxhash.xxh3_128_hexdigest(stored) == target.checksum()
    assert info["bytes"] == len(stored)
    assert info["uri"] == target.uri and info["format"] == name.split(".")[1]
    assert info["compression"] == {"d.parquet": None, "d.csv.gz": "gzip", "d.json.zip": "zip"}[name]


def test_save_result_for_memory_store(tmp_path):
    target = Target(memory_uri("x.txt"))
    info = target.save("hello")
    assert info == {
        "uri": target.uri, "format": "txt", "compression": None, "bytes": 5,
        "checksum": xxhash.xxh3_128_hexdigest(b"hello"),
    }
    assert target.checksum() == info["checksum"]


def test_fingerprint_changes_on_in_place_edit(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a\n1\n")
    target = Target(path)
    cheap, full = target.fingerprint(), target.fingerprint(full=True)
    assert cheap.startswith("stat:") and full == f"xxh3_128:{target.checksum()}"
    assert target.fingerprint() == cheap  # stable while nothing changes
    time.sleep(0.05)  # past the file system's timestamp granularity
    with open(path, "r+b") as f:  # same size, same inode
        f.write(b"b\n2")
    assert target.fingerprint() != cheap
    assert target.fingerprint(full=True) != full


def test_info_reports_size_and_mtime(tmp_path):
    path = tmp_path / "x.txt"
    Target(path).save("12345")
    info = Target(path).info()
    assert info["size"] == 5 and info["uri"] == str(path)
    assert info["mtime"] == pytest.approx(path.stat().st_mtime)


def test_memory_store_fingerprint_falls_back_to_content_hash():
    target = Target(memory_uri("x.txt"))
    target.save("one")
    assert target.info()["size"] == 3
    first = target.fingerprint()
    assert first == f"xxh3_128:{xxhash.xxh3_128_hexdigest(b'one')}"
    target.save("two")
    assert target.fingerprint() != first


# --- local copies -----------------------------------------------------------------------------------------


def test_local_path_of_a_local_file_is_the_file(tmp_path):
    target = Target(tmp_path / "x.csv")
    assert target.local_path() == tmp_path / "x.csv"


def test_remote_file_is_downloaded_once_per_version(tmp_path, monkeypatch):
    monkeypatch.setenv("DBND_CACHE_DIR", str(tmp_path / "cache"))
    target = Target(memory_uri("dir/x.txt"))
    target.save("first")
    copy = target.local_path()
    assert copy.read_text() == "first" and copy.name == "x.txt"
    assert str(copy).startswith(str(tmp_path / "cache"))
    mtime = copy.stat().st_mtime_ns
    assert target.local_path() == copy and copy.stat().st_mtime_ns == mtime  # not downloaded again
    target.save("second")
    newer = target.local_path()
    assert newer != copy and newer.read_text() == "second"


def test_local_path_of_missing_remote_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DBND_CACHE_DIR", str(tmp_path / "cache"))
    uri = memory_uri("missing.csv")
    with pytest.raises(TargetError, match=f"input '{uri}' does not exist"):
        Target(uri).local_path()


# --- error messages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "memory"])
def test_missing_input(tmp_path, where):
    uri = str(tmp_path / "nope.csv") if where == "local" else memory_uri("nope.csv")
    with pytest.raises(TargetError) as err:
        Target(uri).load(pd.DataFrame)
    assert str(err.value) == f"input '{uri}' does not exist (check the path, or pass another with --set)"
    assert not Target(uri).exists()
    for call in (Target(uri).checksum, Target(uri).info, Target(uri).fingerprint, Target(uri).open):
        with pytest.raises(TargetError, match="does not exist"):
            call()


@pytest.mark.parametrize("name,content,expected", [
    ("bad.parquet", b"this is not parquet", "as parquet: "),
    ("bad.json", b"{'single': quotes}", "as json: JSONDecodeError: "),
    ("bad.npy", b"\x93NUMPY garbage", "as npy: "),
    ("bad.csv.gz", b"not gzip at all", "as csv: BadGzipFile"),
])
def test_parse_failure_names_uri_and_format_on_one_line(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(TargetError) as err:
        Target(tmp_path / name).load()
    message = str(err.value)
    assert message.startswith(f"cannot read '{tmp_path / name}' {expected}")
    assert "\n" not in message and "format='NAME'" in message


def test_unknown_extension(tmp_path):
    with pytest.raises(FormatError) as err:
        Target(tmp_path / "data.xlsx").load()
    message = str(err.value)
    assert f"cannot tell the format of '{tmp_path / 'data.xlsx'}' from its extension '.xlsx'" in message
    assert ".csv" in message and ".parquet" in message and ".gz" in message
    assert "format='NAME'" in message and "parquet" in message


def test_unknown_forced_format_fails_at_construction(tmp_path):
    with pytest.raises(FormatError, match="unknown format 'xlsx' .*known formats: csv, feather"):
        Target(tmp_path / "x.bin", format="xlsx")


def test_saving_a_type_the_format_cannot_hold_names_both(tmp_path):
    target = Target(tmp_path / "d.parquet")
    with pytest.raises(FormatError) as err:
        target.save({"a": 1})
    message = str(err.value)
    assert f"format 'parquet' cannot save dict to '{target.uri}'" in message
    assert "save dict as json (a path ending .json) or force format='json'" in message
    assert not (tmp_path / "d.parquet").exists()
    with pytest.raises(FormatError, match="format 'txt' cannot save pandas.DataFrame"):
        Target(tmp_path / "t.txt").save(pd.DataFrame({"a": [1]}))


def test_loading_as_a_type_the_format_cannot_produce(tmp_path):
    target = Target(tmp_path / "d.parquet")
    target.save(pd.DataFrame({"a": [1]}))
    with pytest.raises(FormatError, match=f"format 'parquet' of '{target.uri}' cannot be loaded as dict"):
        target.load(dict)


def test_series_from_a_multi_column_file(tmp_path):
    target = Target(tmp_path / "d.parquet")
    target.save(pd.DataFrame({"a": [1], "b": [2]}))
    with pytest.raises(FormatError, match="as parquet: the parquet data has 2 columns; a pandas.Series needs"):
        target.load(pd.Series)
    assert target.load(pd.Series, columns=["b"]).tolist() == [2]


def test_open_refuses_write_modes(tmp_path):
    with pytest.raises(TargetError, match="targets open only for reading.*writer"):
        Target(tmp_path / "x.txt").open("wb")


def test_empty_uri_is_rejected():
    with pytest.raises(TargetError, match="empty"):
        Target("")


def test_load_accepts_type_keys_as_strings(tmp_path):
    target = Target(tmp_path / "d.parquet")
    target.save(pd.DataFrame({"a": [1, 2]}))
    assert target.load("pandas.DataFrame")["a"].tolist() == [1, 2]
    assert target.load("pandas.Series").tolist() == [1, 2]
    with pytest.raises(FormatError, match="cannot be loaded as pathlib.Path"):
        target.load("pathlib.Path")


def test_open_and_writer_decompress_files_of_unknown_format(tmp_path):
    target = Target(tmp_path / "blob.bin.gz")
    with target.writer() as f:
        f.write(b"\x00raw bytes")
    assert (tmp_path / "blob.bin.gz").read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
    with target.open() as f:
        assert f.read() == b"\x00raw bytes"


@pytest.mark.parametrize("value", [3, 2.5, True])
def test_json_scalars_round_trip(tmp_path, value):
    target = Target(tmp_path / "v.json")
    target.save(value)
    assert target.load(type(value)) == value and type(target.load(type(value))) is type(value)
