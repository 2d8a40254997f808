"""The built-in file formats: csv, tsv, json, jsonl, parquet, feather, orc, pickle, txt and npy.

Each reads and writes plain files that pandas, pyarrow, numpy or `json` read without this library.
Registered when `dbnd_prefect.targets` is imported; pandas, pyarrow and numpy load on first use.
"""

from __future__ import annotations

import json
import pickle
from functools import partial
from typing import IO, Any

from dbnd_prefect.errors import FormatError
from dbnd_prefect.targets.formats import ANY, DATAFRAME, NDARRAY, SERIES, Format, register_format, series_name, type_key


def _as_frame(obj: Any) -> Any:
    return obj.to_frame(series_name(obj)) if type_key(type(obj)) == SERIES else obj


def _to_series(frame: Any, fmt: str, hint: str) -> Any:
    if frame.shape[1] != 1:
        raise FormatError(
            f"the {fmt} data has {frame.shape[1]} columns; a pandas.Series needs exactly one",
            hint=hint,
        )
    return frame.iloc[:, 0]


def _has_default_index(frame: Any) -> bool:
    import pandas as pd

    index = frame.index
    return (
        isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None
    )


def _load_csv(f: IO, tk: str, sep: str = ",", **o: Any) -> Any:
    import pandas as pd

    frame = pd.read_csv(f, sep=sep, **o)
    return _to_series(frame, "csv", "select one with usecols=[...]") if tk == SERIES else frame


def _save_csv(obj: Any, f: IO, sep: str = ",", **o: Any) -> None:
    frame = _as_frame(obj)
    # a default RangeIndex carries no data: leave it out so the file reads back as it was
    o.setdefault("index", not _has_default_index(frame))
    frame.to_csv(f, sep=sep, **o)


def _load_json(f: IO, tk: str, **o: Any) -> Any:
    if tk == DATAFRAME:
        import pandas as pd

        return pd.read_json(f, **o)
    if tk == SERIES:
        import io

        import pandas as pd

        text = f.read()
        if "orient" not in o and _is_split_layout(text):
            o["orient"] = "split"  # what _save_json writes: keeps the series name
        return pd.read_json(io.StringIO(text), typ="series", **o)
    return json.load(f, **o)


def _is_split_layout(text: str) -> bool:
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and set(data) == {"name", "index", "data"}


def json_default(value: Any) -> Any:
    """JSON for values json does not know: numpy scalars as numbers, dates as ISO strings."""
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_faithful(value: Any) -> bool:
    """True when `value` reads back from JSON equal to itself (no tuples, int keys, dates...)."""
    try:
        return json.loads(json.dumps(value, default=json_default)) == value
    except (TypeError, ValueError):
        return False


def _save_json(obj: Any, f: IO, **o: Any) -> None:
    key = type_key(type(obj))
    if key == DATAFRAME:
        obj.to_json(f, **{"orient": "records", "date_format": "iso", **o})
    elif key == SERIES:
        obj.to_json(f, **{"orient": "split", "date_format": "iso", **o})
    else:  # one write: json.dump writes piecemeal
        f.write(json.dumps(obj, **{"ensure_ascii": False, "default": json_default, **o}))


def _load_jsonl(f: IO, tk: str, **o: Any) -> Any:
    if tk == DATAFRAME:
        import pandas as pd

        return pd.read_json(f, lines=True, **o)
    return [json.loads(line, **o) for line in f if line.strip()]


def _save_jsonl(obj: Any, f: IO, **o: Any) -> None:
    if type_key(type(obj)) == DATAFRAME:
        obj.to_json(f, **{"orient": "records", "lines": True, "date_format": "iso", **o})
        return
    for item in obj:
        f.write(json.dumps(item, **{"ensure_ascii": False, **o}))
        f.write("\n")


def _load_parquet(f: IO, tk: str, **o: Any) -> Any:
    import pandas as pd

    frame = pd.read_parquet(f, **o)
    return _to_series(frame, "parquet", "select one with columns=[...]") if tk == SERIES else frame


def _save_parquet(obj: Any, f: IO, **o: Any) -> None:
    _as_frame(obj).to_parquet(f, **o)


def _load_feather(f: IO, tk: str, **o: Any) -> Any:
    import pandas as pd

    frame = pd.read_feather(f, **o)
    return _to_series(frame, "feather", "select one with columns=[...]") if tk == SERIES else frame


def _save_feather(obj: Any, f: IO, **o: Any) -> None:
    _as_frame(obj).to_feather(f, **o)


def _load_orc(f: IO, tk: str, **o: Any) -> Any:
    import pandas as pd

    frame = pd.read_orc(f, **o)
    return _to_series(frame, "orc", "select one with columns=[...]") if tk == SERIES else frame


def _save_orc(obj: Any, f: IO, **o: Any) -> None:
    _as_frame(obj).to_orc(f, **o)


def _load_pickle(f: IO, tk: str, **o: Any) -> Any:
    return pickle.load(f, **o)


def _save_pickle(obj: Any, f: IO, **o: Any) -> None:
    pickle.dump(obj, f, **o)


def _load_txt(f: IO, tk: str) -> Any:
    text = f.read()
    return text.splitlines() if tk == "list" else text


def _save_txt(obj: Any, f: IO) -> None:
    if isinstance(obj, str):
        f.write(obj)
        return
    if not lines_faithful(obj):
        raise FormatError(
            "a txt file holds a list only as lines: every item must be a str without line breaks",
            hint="save the list as json or pickle",
        )
    f.write("".join(f"{line}\n" for line in obj))


def lines_faithful(value: Any) -> bool:
    """True when `value` is a list of str that reads back equal from a text file of lines."""
    return isinstance(value, list) and all(
        isinstance(v, str) and v == (v.splitlines() or [""])[0] for v in value
    )


def _load_npy(f: IO, tk: str, **o: Any) -> Any:
    import numpy as np

    return np.load(f, **{"allow_pickle": False, **o})


def _save_npy(obj: Any, f: IO, **o: Any) -> None:
    import numpy as np

    np.save(f, obj, **{"allow_pickle": False, **o})


_FRAMES = (DATAFRAME, SERIES)
for _fmt in (
    Format("csv", (".csv",), _load_csv, _save_csv, False, _FRAMES, _FRAMES),
    Format("tsv", (".tsv", ".tab"), partial(_load_csv, sep="\t"), partial(_save_csv, sep="\t"),
           False, _FRAMES, _FRAMES),
    Format("json", (".json",), _load_json, _save_json, False,
           ("dict", "list", "str", "int", "float", "bool", *_FRAMES),
           ("dict", "list", "str", "int", "float", "bool", *_FRAMES)),
    Format("jsonl", (".jsonl", ".ndjson"), _load_jsonl, _save_jsonl, False,
           (DATAFRAME, "list"), (DATAFRAME, "list")),
    Format("parquet", (".parquet", ".pq"), _load_parquet, _save_parquet, True, _FRAMES, _FRAMES),
    Format("feather", (".feather", ".arrow"), _load_feather, _save_feather, True, _FRAMES, _FRAMES),
    Format("orc", (".orc",), _load_orc, _save_orc, True, _FRAMES, _FRAMES),
    Format("pickle", (".pkl", ".pickle"), _load_pickle, _save_pickle, True, (ANY,), (ANY,)),
    Format("txt", (".txt", ".text", ".md", ".log"), _load_txt, _save_txt, False, ("str", "list"), ("str", "list")),
    Format("npy", (".npy",), _load_npy, _save_npy, True, (NDARRAY,), (NDARRAY,)),
):
    register_format(_fmt)
