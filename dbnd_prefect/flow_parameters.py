"""The parameters a pipeline's Prefect flow declares: what deployments, `--param` and the UI form offer."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

from dbnd_prefect.params import ParamSpec


def flow_signature(func: Callable[..., Any], specs: Sequence[ParamSpec]) -> inspect.Signature:
    """The function's signature with data parameters typed as `str` (a path or URI).

    Prefect builds a flow's parameter schema (UI forms, deployment overrides) from this, and a data
    parameter arrives from there as a location.
    """
    sig = inspect.signature(func)
    sig = sig.replace(parameters=[
        p.replace(kind=p.POSITIONAL_OR_KEYWORD) if p.kind == p.POSITIONAL_ONLY else p for p in sig.parameters.values()
    ])
    by_name = {s.name: s for s in specs}
    params = []
    for p in sig.parameters.values():
        spec = by_name.get(p.name)
        if spec is not None and spec.is_data:
            p = p.replace(annotation=str)
        elif spec is not None:
            p = p.replace(annotation=spec.annotation)
        params.append(p)
    return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)
