"""Data contracts: `Annotated[DataFrame, Schema(...)]` validates a parameter when loaded and an output
before it is saved, with pandera (imported only when a schema is checked).

A violation is one `DataContractError` naming the task, the parameter or output, the URI, the
column and the check; the result (checks passed / failed) becomes part of the data profile.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from dbnd_prefect.errors import DataContractError
from dbnd_prefect.definitions.spec import Data


@dataclasses.dataclass(frozen=True, init=False, eq=False, repr=False)
class Schema(Data):
    """A pandera `DataFrameModel` (class) or `DataFrameSchema` that the data must satisfy.

    `Annotated[DataFrame, Schema(Wines)]` on a parameter or return value; it is a `Data` marker,
    so `Schema(Wines, format="csv", profile=False)` also sets the format and profiling.
    """

    schema: Any = None

    def __init__(self, schema: Any, *, format: str | None = None, load_options: Mapping[str, Any] | None = None,
                 save_options: Mapping[str, Any] | None = None, profile: bool | None = None,
                 histograms: bool | None = None) -> None:
        if not (hasattr(schema, "validate") or hasattr(schema, "to_schema")):
            raise TypeError(f"Schema() takes a pandera DataFrameModel or DataFrameSchema, got {type(schema).__name__}")
        for name, value in (("format", format), ("load_options", dict(load_options or {})),
                            ("save_options", dict(save_options or {})), ("profile", profile),
                            ("histograms", histograms), ("schema", schema)):
            object.__setattr__(self, name, value)

    @property
    def name(self) -> str:
        """The schema's name as shown to users (the model class or the schema's own name)."""
        if isinstance(self.schema, type):
            return self.schema.__name__
        return getattr(self.schema, "name", None) or type(self.schema).__name__

    def __repr__(self) -> str:
        return f"Schema({self.name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and other.schema is self.schema and Data.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]  # like Data: its options are dicts


@dataclasses.dataclass(frozen=True)
class ContractSite:
    """Where data is checked: the task, the parameter or output, and its URI (if stored)."""

    task: str
    name: str
    kind: str  # "parameter" or "output"
    uri: str | None = None

    def describe(self) -> str:
        where = f"task '{self.task}', {self.kind} '{self.name}'"
        return f"{where} ({self.uri})" if self.uri else where


def contract_of(data: Data | None) -> Schema | None:
    """The Schema a parameter's or output's Data marker declares, if any."""
    return data if isinstance(data, Schema) else None


def check_contract(schema: Schema, value: Any, where: ContractSite) -> tuple[Any, dict[str, Any]]:
    """(`value` as validated, the result {schema, passed, failed, failures}); DataContractError on a violation.

    The error is raised after the result is known; it carries the result as `error.contract`.
    """
    import pandera.errors as pandera_errors

    resolved = schema.schema.to_schema() if hasattr(schema.schema, "to_schema") else schema.schema
    total = _count_checks(resolved)
    try:
        validated = resolved.validate(value, lazy=True)
    except pandera_errors.SchemaErrors as exc:
        failures = _failures(exc.failure_cases)
        result = {"schema": schema.name, "passed": max(total - len(failures), 0), "failed": len(failures),
                  "failures": failures}
        raise _violation(schema, where, failures, result) from None
    except pandera_errors.SchemaError as exc:
        failures = [{"column": getattr(exc, "column_name", None) or "-", "check": str(getattr(exc, "check", None)
                     or exc.reason_code or "schema"), "cases": 1, "examples": str(exc)[:200]}]
        result = {"schema": schema.name, "passed": max(total - 1, 0), "failed": 1, "failures": failures}
        raise _violation(schema, where, failures, result) from None
    except Exception as exc:
        result = {"schema": schema.name, "passed": 0, "failed": 1,
                  "failures": [{"column": "-", "check": "validate", "cases": 1, "examples": str(exc)[:200]}]}
        error = DataContractError(f"data contract {schema.name} could not check a {type(value).__name__}: "
                                  f"{type(exc).__name__}: {exc}", hint="annotate a pandas DataFrame, or fix the schema")
        error.contract = result  # type: ignore[attr-defined]
        raise _placed(error, where) from None
    return validated, {"schema": schema.name, "passed": total, "failed": 0, "failures": []}


def _violation(schema: Schema, where: ContractSite, failures: list[dict[str, Any]],
               result: dict[str, Any]) -> DataContractError:
    first = failures[0]
    more = f"; and {len(failures) - 1} more failed check(s)" if len(failures) > 1 else ""
    error = DataContractError(
        f"data contract {schema.name} violated: column '{first['column']}' failed check '{first['check']}' "
        f"({first['cases']} case(s), e.g. {first['examples']}){more}",
        hint="fix the data, or the schema if the data is right",
    )
    error.column, error.check = first["column"], first["check"]
    error.contract = result  # type: ignore[attr-defined]
    return _placed(error, where)


def _placed(error: DataContractError, where: ContractSite) -> DataContractError:
    if where.kind == "parameter":
        return error.add_context(where.describe(), task=where.task, parameter=where.name, uri=where.uri)
    error.exit_code = 1  # the task's own output: a failed task, not bad input
    return error.add_context(where.describe(), task=where.task, uri=where.uri)


def _failures(cases: Any) -> list[dict[str, Any]]:
    """One entry per failed (column, check) with its number of cases and a few examples."""
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for row in cases.to_dict("records"):
        check = str(row.get("check"))
        column = row.get("column")
        if check == "column_in_dataframe" or column is None or str(column) == "None":
            column = row.get("failure_case") if check == "column_in_dataframe" else "-"
        key = (str(column), check)
        entry = grouped.setdefault(key, {"column": str(column), "check": check, "cases": 0, "examples": []})
        entry["cases"] += 1
        if len(entry["examples"]) < 3:
            entry["examples"].append(str(row.get("failure_case"))[:40])
    for entry in grouped.values():
        entry["examples"] = ", ".join(entry["examples"])
    return list(grouped.values())


def _count_checks(schema: Any) -> int:
    """How many checks a schema makes: column presence, dtype, nulls, uniqueness and each Check."""
    total = len(getattr(schema, "checks", []) or []) + (1 if getattr(schema, "strict", False) else 0)
    total += 1 if getattr(schema, "unique", None) else 0
    columns = getattr(schema, "columns", None)
    if not isinstance(columns, Mapping):  # a SeriesSchema or another kind: its own checks and dtype
        return total + (1 if getattr(schema, "dtype", None) is not None else 0) or 1
    for column in columns.values():
        total += 1 if getattr(column, "required", True) else 0
        total += 1 if getattr(column, "dtype", None) is not None else 0
        total += 0 if getattr(column, "nullable", True) else 1
        total += 1 if getattr(column, "unique", False) else 0
        total += len(getattr(column, "checks", []) or [])
    return total or 1
