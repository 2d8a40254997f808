"""Folder targets and the output format choice, on local disk and an object store (memory://), no Prefect."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from dbnd_prefect.errors import FormatError, TargetError
from dbnd_prefect.targets import Target
from dbnd_prefect.targets.output_choice import OutputRequest, chosen_format, save_output


def store_root(tmp_path, where: str) -> str:
    return str(tmp_path) if where == "local" else f"memory://dbnd-folders-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    return store_root(tmp_path, request.param)


def frames() -> dict[str, pd.DataFrame]:
    return {"a": pd.DataFrame({"x": [1, 2]}), "b": pd.DataFrame({"x": [3]})}


def test_dict_of_frames_round_trips_as_a_folder(root):
    target = Target(f"{root}/parts/")
    info = target.save(frames())
    assert info["files"] == 3 and info["format"] == "parquet"
    assert sorted(p.rsplit("/", 1)[-1] for p in target.fs.ls(target.path, detail=False)) == ["_SUCCESS", "a.parquet", "b.parquet"]
    loaded = Target(f"{root}/parts/").load("dict")
    assert sorted(loaded) == ["a", "b"] and loaded["b"]["x"].tolist() == [3]
    assert Target(f"{root}/parts/").load(pd.DataFrame)["x"].tolist() == [1, 2, 3]
    # what verification compares later: the same size, listing and checksum as at write time
    assert target.info()["size"] == info["bytes"] and target.checksum() == info["checksum"]


def test_folder_fingerprint_changes_with_a_part_and_reads_no_content(root):
    target = Target(f"{root}/parts/")
    target.save(frames())
    before = target.fingerprint()
    assert before.startswith("listing:3:") and target.fingerprint() == before
    Target(f"{root}/parts/c.parquet").save(pd.DataFrame({"x": [9]}))
    assert target.fingerprint() != before


def test_compressed_csv_folder_with_forced_format(root):
    target = Target(f"{root}/gz/", format="csv.gz")
    target.save(frames())
    assert sorted(p.rsplit("/", 1)[-1] for p in target.fs.ls(target.path, detail=False)) == ["_SUCCESS", "a.csv.gz", "b.csv.gz"]
    assert Target(f"{root}/gz/").load("dict")["a"]["x"].tolist() == [1, 2]


def test_unfinished_spark_folder_is_refused(tmp_path):
    folder = tmp_path / "out"
    (folder / "_temporary" / "0" / "task_0").mkdir(parents=True)
    (folder / "_temporary" / "0" / "task_0" / "part-00001.parquet").write_bytes(b"half")
    (folder / "part-00000.parquet").write_bytes(b"")
    with pytest.raises(TargetError, match="_temporary.*has not finished"):
        Target(str(folder)).load(pd.DataFrame)


def test_folder_without_extensions_needs_a_format(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "part-00000").write_text("a\n1\n")
    (folder / "_SUCCESS").write_text("")
    with pytest.raises(FormatError, match="force one with Data"):
        Target(str(folder)).load(pd.DataFrame)
    assert Target(str(folder), format="csv").load(pd.DataFrame)["a"].tolist() == [1]


def test_partitioned_folder_keys_keep_their_subfolders(tmp_path):
    for year in ("2024", "2025"):
        (tmp_path / "p" / f"year={year}").mkdir(parents=True)
        pd.DataFrame({"v": [int(year)]}).to_parquet(tmp_path / "p" / f"year={year}" / "0.parquet")
    assert sorted(Target(str(tmp_path / "p")).load("dict")) == ["year=2024/0", "year=2025/0"]
    frame = Target(str(tmp_path / "p")).load(pd.DataFrame)  # the partition values come back as a column
    assert frame.to_dict("list") == {"v": [2024, 2025], "year": ["2024", "2025"]}


def test_folder_does_not_load_as_a_list(tmp_path):
    Target(str(tmp_path / "f") + "/").save(frames())
    with pytest.raises(FormatError, match="loads as a pandas.DataFrame or a dict"):
        Target(str(tmp_path / "f")).load("list")


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
