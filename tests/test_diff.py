"""`dbnd diff A B`: why two stored versions differ and what differs in their data, against real runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas import DataFrame

from dbnd_prefect import task
from dbnd_prefect.api.diff import diff
from tests.cli_asserts import ran, user_error
from dbnd_prefect.pytest_plugin import CmdResult, run_cmd


@task
def df_orders(raw: DataFrame, factor: int = 2, drop: int = -1, extra: bool = False) -> DataFrame:
    out = raw.assign(amount=raw["qty"] * factor)
    out = out[out["id"] != drop]
    return out.assign(note="x") if extra else out


@task
def df_summary(frame: DataFrame, label: str = "a") -> dict:
    return {"label": label, "rows": len(frame), "ids": [int(i) for i in frame["id"]]}


def dbnd(*args: str) -> CmdResult:
    return run_cmd(list(args))




def write_raw(workdir: Path) -> None:
    pd.DataFrame({"id": range(6), "qty": [1, 2, 3, 4, 5, 6]}).to_csv(workdir / "raw.csv", index=False)


def run_id(*sets: str) -> str:
    result = ran(dbnd("run", "df_orders", "--set", "raw=raw.csv", *[f"--set={s}" for s in sets]))
    return result.run.flow_run_id


def test_diff_of_two_versions_says_why_and_what_by_key(workdir):
    write_raw(workdir)
    first = run_id("factor=2")
    second = run_id("factor=3", "drop=4", "extra=true")
    shown = ran(dbnd("diff", f"df_orders.result@run:{first[:8]}", "df_orders.result@latest", "--key", "id"))
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"A: df_orders.result@run:{first[:8]} -> ") and lines[1].startswith("B: ")
    assert "why: parameter 'factor' changed" in lines and "  parameter factor: 2 -> 3" in lines
    assert "  parameter extra: False -> True" in lines
    assert "columns added: note (string)" in lines or "columns added: note (large_string)" in lines
    assert "rows: 6 -> 5" in lines
    assert "rows by key id: 0 added, 1 removed, 5 changed, 0 unchanged" in lines
    assert "  changed in column amount: 5 row(s)" in lines
    assert "  removed {'id': 4, 'qty': 5, 'amount': 10}" in lines
    assert "  changed {'id': 0}: amount 2 -> 3" in lines
    assert lines[-1] == "A and B differ"

    found = json.loads(ran(dbnd("diff", f"df_orders.result@run:{first}", "df_orders.result@latest", "--key", "id",
                                "--json")).stdout)
    assert found["schema"]["added"].keys() == {"note"} and found["schema"]["removed"] == {}
    assert found["rows"] == {"a": 6, "b": 5}
    assert {k: found["keyed"][k] for k in ("added", "removed", "changed")} == {"added": 0, "removed": 1, "changed": 5}
    assert found["params"] == {"drop": [-1, 4], "extra": [False, True], "factor": [2, 3]}
    assert found["columns"]["amount"]["a"] == {"count": 6, "nulls": 0, "mean": 7.0, "min": 2, "max": 12}
    assert found["differ"] is True and found["kind"] == "frame"
    assert found["b"]["asked"] == "df_orders.result@latest" and found["b"]["signature"]

    ran(dbnd("diff", f"df_orders.result@run:{first}", "df_orders.result@latest", "--exit-code"), code=1)
    signature = found["b"]["signature"]
    same = ran(dbnd("diff", "df_orders.result@latest", f"@{signature[:10]}", "--exit-code", "--key", "id"))
    assert same.stdout.splitlines()[-1] == "A and B hold the same data"
    assert "rows by key id: 0 added, 0 removed, 0 changed, 5 unchanged" in same.stdout
    assert second  # the newest run is the one @latest names


def test_diff_of_other_values_is_a_readable_diff(workdir):
    write_raw(workdir)
    run_id("factor=2")
    runs = [ran(dbnd("run", "df_summary", "--set", "frame=df_orders.result@latest", "--set", f"label={label}"))
            for label in ("a", "b")]
    first, second = (r.run.task_runs[0]["signature"] for r in runs)
    shown = ran(dbnd("diff", f"df_summary.result@{first[:12]}", f"df_summary@{second[:12]}", "--exit-code"), code=1)
    lines = shown.stdout.splitlines()
    assert "why: parameter 'label' changed" in lines
    assert '-  "label": "a",' in lines and '+  "label": "b",' in lines
    assert lines[-1] == "A and B differ"
    found = diff(f"@{first[:12]}", f"@{second[:12]}", root=str(workdir / "data"), env="local")
    assert found["kind"] == "value" and found["params"] == {"label": ["a", "b"]} and found["differ"]


def test_diff_of_uris_large_frames_column_by_column(workdir):
    rows = 50_000
    ids = np.arange(rows)
    a = pd.DataFrame({"id": ids, "x": ids * 1.5, "name": [f"n{i % 7}" for i in ids], "gone": 1})
    b = a[a["id"] % 1000 != 3].copy()  # 50 removed
    b.loc[b["id"] % 5000 == 0, "x"] = -1.0  # 10 changed
    b = pd.concat([b, pd.DataFrame({"id": [rows, rows + 1], "x": [0.5, np.nan], "name": ["new", "new"]})])
    b["x"] = b["x"].astype("float32")
    b = b.drop(columns=["gone"]).assign(added="y")
    pq.write_table(pa.Table.from_pandas(a, preserve_index=False), workdir / "a.parquet", row_group_size=7_000)
    pq.write_table(pa.Table.from_pandas(b, preserve_index=False), workdir / "b.parquet", row_group_size=7_000)
    found = json.loads(ran(dbnd("diff", "a.parquet", "b.parquet", "--key", "id", "--json")).stdout)
    assert found["schema"]["added"] in ({"added": "string"}, {"added": "large_string"})  # pandas' string type
    assert found["schema"]["removed"] == {"gone": "int64"} and found["schema"]["changed"] == {"x": ["double", "float"]}
    assert found["rows"] == {"a": rows, "b": rows - 50 + 2}
    keyed = found["keyed"]
    assert (keyed["added"], keyed["removed"], keyed["changed"]) == (2, 50, 10)
    assert keyed["columns"] == {"x": 10}
    assert [r["id"] for r in keyed["samples"]["removed"]] == [3, 1003, 2003, 3003, 4003]
    assert [r["id"] for r in keyed["samples"]["added"]] == [rows, rows + 1]
    assert keyed["samples"]["changed"][:2] == [{"key": {"id": 0}, "values": {"x": [0.0, -1.0]}},
                                                {"key": {"id": 5000}, "values": {"x": [7500.0, -1.0]}}]
    assert found["params"] == {} and found["why"] == [] and found["a"]["signature"] is None
    assert found["columns"]["x"]["b"]["nulls"] == 1

    pd.DataFrame({"id": [1, 2], "v": ["a", "b"]}).to_csv(workdir / "a.csv", index=False)
    pd.DataFrame({"id": [1, 2], "v": ["a", "c"]}).to_csv(workdir / "b.csv", index=False)
    csv = ran(dbnd("diff", "a.csv", "b.csv", "--key", "id"), code=0).stdout.splitlines()
    assert "rows by key id: 0 added, 0 removed, 1 changed, 1 unchanged" in csv
    assert "  changed {'id': 2}: v 'b' -> 'c'" in csv

    (workdir / "a.bin").write_bytes(b"abc")
    (workdir / "b.bin").write_bytes(b"abcd")
    files = json.loads(ran(dbnd("diff", "a.bin", "b.bin", "--json", "--exit-code"), code=1).stdout)
    assert files["kind"] == "file" and files["files"]["a"]["bytes"] == 3 and files["files"]["b"]["bytes"] == 4


def test_diff_mistakes_are_one_line_and_exit_2(workdir):
    write_raw(workdir)
    run_id("factor=2")
    pd.DataFrame({"id": [1, 1], "v": [1, 2]}).to_parquet(workdir / "dup.parquet")
    user_error(dbnd("diff", "df_orders.result@latest", "missing.parquet"), "missing.parquet: no such file")
    user_error(dbnd("diff", "df_orders.result@latest", "df_orders.result@latest", "--key", "sku"),
               "--key: column 'sku' is not in A", "A has columns id, qty, amount")
    user_error(dbnd("diff", "dup.parquet", "dup.parquet", "--key", "id"), "not unique in A (1 duplicate row(s))")
    user_error(dbnd("diff", "df_orders.result@latest", "df_nothing.result@latest"), "no stored outputs of task")
    user_error(dbnd("diff", "df_orders.result@latest", "@abcdef0123"), "@abcdef0123: no stored version")
    user_error(dbnd("diff", "df_orders.result@latest", "df_orders.result@latest", "--key", "id,"), "empty column")


def test_keyed_diff_pairs_rows_in_any_order_on_any_key_type(workdir):
    rng = np.random.default_rng(7)
    ids = rng.permutation(2_000)
    a = pd.DataFrame({"id": ids, "code": [f"c{i:05d}" for i in ids], "part": ids % 3, "v": ids * 2.0})
    b = a[a["id"] >= 10].sample(frac=1.0, random_state=3).copy()  # 10 removed, rows shuffled
    b.loc[b["id"] % 100 == 50, "v"] = -1.0  # 20 changed
    b = pd.concat([b, pd.DataFrame({"id": [5000, 5001], "code": ["c05000", "c05001"], "part": [0, 1],
                                    "v": [1.0, 2.0]})])
    a.to_parquet(workdir / "a.parquet", index=False)
    b.to_parquet(workdir / "b.parquet", index=False)
    counts = set()
    for key in ("id", "code", "code,part"):  # an integer key is paired by sorting, others by a hash join
        keyed = diff("a.parquet", "b.parquet", key=key, root=str(workdir / "data"), env="local")["keyed"]
        counts.add((keyed["added"], keyed["removed"], keyed["changed"], keyed["unchanged"]))
        assert [r["id"] for r in keyed["samples"]["removed"]] == [int(i) for i in ids if i < 10][:5]
        changed = keyed["samples"]["changed"]
        assert len(changed) == 5 and all(list(row["values"]) == ["v"] and row["values"]["v"][1] == -1.0
                                         for row in changed)
    assert counts == {(2, 10, 20, 1970)}


def test_on_a_terminal_diff_and_gc_print_tables(workdir):
    import io

    from rich.console import Console

    from dbnd_prefect.api.gc import gc
    from dbnd_prefect.cli import lifecycle

    write_raw(workdir)
    run_id("factor=2")
    run_id("factor=5")
    found = diff("df_orders.result@latest", "df_orders.result@latest", key="id", root=str(workdir / "data"),
                 env="local")
    console = Console(file=io.StringIO(), width=200)
    console.print(lifecycle._diff_table(found))
    console.print(lifecycle._gc_table(gc(str(workdir / "data"), "local", keep_last=1, older_than="0s", grace="0s")))
    shown = console.file.getvalue()
    assert "COLUMN" in shown and "amount" in shown and "int64" in shown and "A and B hold the same data" in shown
    assert "SIGNATURE" in shown and "would remove 1 version(s) and 0 orphan(s)" in shown
