"""Folder targets and the output format choice, on local disk, memory:// and real object-store emulators
(moto S3, fake-gcs-server, Azurite on 127.0.0.1; fixtures in tests/servers.py), no Prefect."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from dbnd_prefect.errors import FormatError, TargetError
from dbnd_prefect.targets import Target, register_storage_options
from dbnd_prefect.targets.output_choice import OutputRequest, chosen_format, save_output

BUCKET_FIXTURES = {"s3": "s3_bucket", "gs": "gcs_bucket", "az": "az_container"}


@pytest.fixture(params=["local", "memory", "s3", "gs", "az"])
def root(request, tmp_path) -> str:
    """The folder under test's parent: a local directory, memory://, or a fresh bucket/container on an emulator."""
    where = request.param
    if where == "local":
        return str(tmp_path)
    if where == "memory":
        return f"memory://dbnd-folders-{uuid.uuid4().hex[:8]}"
    bucket = request.getfixturevalue(BUCKET_FIXTURES[where])
    if where == "gs":
        # the emulator takes no credentials: plug anonymous access in through the options registry
        register_storage_options("gs", {"token": "anon"})
        request.addfinalizer(lambda: register_storage_options("gs", {}))
    return f"{where}://{bucket}/dbnd"


def put(uri: str, data: bytes) -> None:
    """One file written as another tool would leave it (no folder bookkeeping)."""
    with Target(uri).writer("wb") as f:
        f.write(data)


def names(target: Target) -> list[str]:
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in target.fs.ls(target.path, detail=False))


def frames() -> dict[str, pd.DataFrame]:
    return {"a": pd.DataFrame({"x": [1, 2]}), "b": pd.DataFrame({"x": [3]})}


def test_dict_of_frames_round_trips_as_a_folder(root):
    target = Target(f"{root}/parts/")
    info = target.save(frames())
    assert info["files"] == 3 and info["format"] == "parquet"
    assert names(target) == ["_SUCCESS", "a.parquet", "b.parquet"]
    loaded = Target(f"{root}/parts/").load("dict")
    assert sorted(loaded) == ["a", "b"]
    for key, frame in frames().items():
        pd.testing.assert_frame_equal(loaded[key], frame)
    assert Target(f"{root}/parts/").load(pd.DataFrame)["x"].tolist() == [1, 2, 3]
    # what verification compares later: the same size, listing and checksum as at write time
    assert target.info()["size"] == info["bytes"] and target.checksum() == info["checksum"]


def test_saving_a_folder_again_replaces_it_whole(root):
    target = Target(f"{root}/parts/")
    target.save(frames())
    target.save({"c": pd.DataFrame({"x": [7]})})
    assert names(target) == ["_SUCCESS", "c.parquet"]
    assert Target(f"{root}/parts/").load(pd.DataFrame)["x"].tolist() == [7]


def test_folder_fingerprint_changes_with_a_part_and_reads_no_content(root):
    target = Target(f"{root}/parts/")
    target.save(frames())
    before = target.fingerprint()
    assert before.startswith("listing:3:") and target.fingerprint() == before
    assert Target(f"{root}/parts/").fingerprint() == before  # a fresh Target over the same folder agrees
    # a part rewritten in place with the same size and other bytes
    part = Target(f"{root}/parts/a.parquet")
    size = part.info()["size"]
    part.save(pd.DataFrame({"x": [2, 1]}))
    assert part.info()["size"] == size
    rewritten = target.fingerprint()
    assert rewritten != before and target.fingerprint() == rewritten
    # a new part
    Target(f"{root}/parts/c.parquet").save(pd.DataFrame({"x": [9]}))
    added = target.fingerprint()
    assert added.startswith("listing:4:") and added not in (before, rewritten)
    # a file next to the folder is not part of it
    put(f"{root}/parts-sibling.txt", b"x")
    assert target.fingerprint() == added


def test_compressed_csv_folder_with_forced_format(root):
    target = Target(f"{root}/gz/", format="csv.gz")
    info = target.save(frames())
    assert info["format"] == "csv" and info["compression"] == "gzip"
    assert names(target) == ["_SUCCESS", "a.csv.gz", "b.csv.gz"]
    with Target(f"{root}/gz/a.csv.gz").open("r") as f:
        assert f.read() == "x\n1\n2\n"
    assert Target(f"{root}/gz/").load("dict")["a"]["x"].tolist() == [1, 2]


def test_unfinished_spark_folder_is_refused(root):
    put(f"{root}/out/_temporary/0/task_0/part-00001.parquet", b"half")
    put(f"{root}/out/part-00000.parquet", b"")
    with pytest.raises(TargetError, match="_temporary.*has not finished"):
        Target(f"{root}/out/").load(pd.DataFrame)


def test_unfinished_spark_folder_is_refused_without_a_trailing_slash(tmp_path):
    folder = tmp_path / "out"
    (folder / "_temporary" / "0" / "task_0").mkdir(parents=True)
    (folder / "_temporary" / "0" / "task_0" / "part-00001.parquet").write_bytes(b"half")
    (folder / "part-00000.parquet").write_bytes(b"")
    with pytest.raises(TargetError, match="_temporary.*has not finished"):
        Target(str(folder)).load(pd.DataFrame)


def test_folder_without_extensions_needs_a_format(root):
    put(f"{root}/plain/part-00000", b"a\n1\n")
    put(f"{root}/plain/_SUCCESS", b"")
    with pytest.raises(FormatError, match="force one with Data"):
        Target(f"{root}/plain/").load(pd.DataFrame)
    assert Target(f"{root}/plain/", format="csv").load(pd.DataFrame)["a"].tolist() == [1]


def test_partitioned_folder_keys_keep_their_subfolders(root):
    for year in ("2024", "2025"):
        Target(f"{root}/p/year={year}/0.parquet").save(pd.DataFrame({"v": [int(year)]}))
    assert sorted(Target(f"{root}/p/").load("dict")) == ["year=2024/0", "year=2025/0"]
    frame = Target(f"{root}/p/").load(pd.DataFrame)  # the partition values come back as a column
    assert frame.to_dict("list") == {"v": [2024, 2025], "year": ["2024", "2025"]}
    fingerprint = Target(f"{root}/p/").fingerprint()
    assert fingerprint.startswith("listing:2:")
    Target(f"{root}/p/year=2026/0.parquet").save(pd.DataFrame({"v": [2026]}))
    assert Target(f"{root}/p/").fingerprint() != fingerprint
    assert Target(f"{root}/p/").load(pd.DataFrame)["year"].tolist() == ["2024", "2025", "2026"]


def test_local_folders_load_without_a_trailing_slash(tmp_path):
    for year in ("2024", "2025"):
        (tmp_path / "p" / f"year={year}").mkdir(parents=True)
        pd.DataFrame({"v": [int(year)]}).to_parquet(tmp_path / "p" / f"year={year}" / "0.parquet")
    assert sorted(Target(str(tmp_path / "p")).load("dict")) == ["year=2024/0", "year=2025/0"]
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "part-00000").write_text("a\n1\n")
    (tmp_path / "plain" / "_SUCCESS").write_text("")
    with pytest.raises(FormatError, match="force one with Data"):
        Target(str(tmp_path / "plain")).load(pd.DataFrame)
    assert Target(str(tmp_path / "plain"), format="csv").load(pd.DataFrame)["a"].tolist() == [1]


def test_folder_does_not_load_as_a_list(root):
    Target(f"{root}/f/").save(frames())
    with pytest.raises(FormatError, match="loads as a pandas.DataFrame or a dict"):
        Target(f"{root}/f/").load("list")


@pytest.mark.parametrize("value, request_, expected", [
    (np.array([1, "a"], dtype=object), OutputRequest("r"), ("pickle", False)),
    (np.arange(3), OutputRequest("r"), ("npy", False)),
    (["a", "b"], OutputRequest("r", lines=True), ("txt", False)),
    (["a\nb"], OutputRequest("r", lines=True), ("json", False)),
    (["a", "b"], OutputRequest("r"), ("json", False)),
    ({"k": (1, 2)}, OutputRequest("r"), ("pickle", False)),
    (frames(), OutputRequest("r"), ("parquet", True)),
    (frames(), OutputRequest("r", forced="csv"), ("csv", True)),
    (frames(), OutputRequest("r", forced="pickle"), ("pickle", False)),
    ({"k": 1}, OutputRequest("r", configured="nosuch"), ("json", False)),
])
def test_chosen_format(value, request_, expected):
    assert chosen_format(value, request_)[:2] == expected


def test_save_output_falls_back_to_pickle_when_the_chosen_format_fails(tmp_path, caplog):
    target, info = save_output(str(tmp_path), "t", OutputRequest("r"), pd.DataFrame({"v": [1, "a"]}))
    assert info["format"] == "pickle" and target.uri.endswith("r.pkl")
    assert "cannot be written as parquet" in caplog.text
    assert not list(tmp_path.glob("r.parquet*")) and not list(tmp_path.glob(".r.*"))
