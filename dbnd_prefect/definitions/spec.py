"""A function signature seen as typed parameters and named outputs, and string coercion.

This is where a parameter is classified as *data* (a value that may arrive as a path or URI and
is loaded by format) or *simple* (parsed from a string), and where a return annotation becomes
output names.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import pathlib
import typing
from typing import Any, Callable, Mapping, Sequence

from dbnd_prefect import plugins
from dbnd_prefect.errors import OutputError, ParameterError

# Type keys (see targets.formats.type_key) that are loaded from a path or URI when given one.
DATA_TYPE_KEYS = frozenset(
    {"pandas.DataFrame", "pandas.Series", "numpy.ndarray", "dict", "list", *(t.key for t in plugins.frame_types())}
)
_SIMPLE_KEYS: tuple[tuple[type, str], ...] = (
    (bool, "bool"), (int, "int"), (float, "float"), (str, "str"),
    (dt.datetime, "datetime.datetime"), (dt.date, "datetime.date"), (dt.timedelta, "datetime.timedelta"),
)


@dataclasses.dataclass(frozen=True)
class Data:
    """Marks a parameter or output as data and sets its format and options.

    Use it inside `typing.Annotated`: `Annotated[str, Data()]` loads a text file into a `str`;
    `Annotated[DataFrame, Data(format="csv", load_options={"sep": ";"})]` forces the format.
    """

    format: str | None = None
    load_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    save_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    profile: bool | None = None  # profile this input/output automatically (None: `tracking.profile`)
    histograms: bool | None = None  # with histograms (None: `tracking.histograms`)
    allow_pickle: bool = False  # load a pickle given from outside the data root (see run.allow_foreign_pickle)


@dataclasses.dataclass(frozen=True)
class Output:
    """Marks a parameter as a file the task writes itself (a model, an image, any binary format):
    `model_file: Annotated[Path, Output(".joblib")]`.

    The task receives a fresh local path to write to; when it returns, the file is moved into the run's
    output folder atomically, versioned and reused like a returned value, and listed in the manifest.
    Callers do not pass it: a call returns it (after the returned outputs) as the stored file's path.
    """

    extension: str = ""


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One parameter of a task or pipeline."""

    name: str
    annotation: Any
    type_key: str
    default: Any
    kind: inspect._ParameterKind
    is_data: bool
    data: Data | None
    significant: bool = True

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def describe_type(self) -> str:
        return self.type_key if self.annotation is not inspect.Parameter.empty else "any"


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """One named output of a task."""

    name: str
    annotation: Any
    type_key: str
    format: str | None = None
    data: Data | None = None  # the output's Data marker (a Schema is one)
    file: Output | None = None  # a file the task writes itself, through a parameter

    @property
    def returned(self) -> bool:
        """Part of the function's return value (not a file it writes through a parameter)."""
        return self.file is None

    @property
    def save_options(self) -> dict[str, Any]:
        """Options for the format's writer, from `Data(save_options=...)`."""
        return dict(self.data.save_options) if self.data is not None else {}

    @property
    def lines(self) -> bool:
        """Declared as `List[str]`: stored as a text file of lines."""
        return typing.get_origin(self.annotation) is list and typing.get_args(self.annotation) == (str,)

    @property
    def frames(self) -> bool:
        """Declared as `Dict[str, DataFrame]`: stored as a folder of one file per key."""
        args = typing.get_args(self.annotation)
        return typing.get_origin(self.annotation) is dict and len(args) == 2 and args[0] is str \
            and annotation_type_key(args[1]) == "pandas.DataFrame"


def _output_marker(annotation: Any) -> Output | None:
    if typing.get_origin(annotation) is typing.Annotated:
        return next((e for e in typing.get_args(annotation)[1:] if isinstance(e, Output)), None)
    return None


def file_outputs(func: Callable[..., Any]) -> list[OutputSpec]:
    """The parameters of `func` marked `Output()`: files the task writes itself, as outputs."""
    hints = type_hints(func)
    specs = []
    for p in inspect.signature(func).parameters.values():
        marker = _output_marker(hints.get(p.name, p.annotation))
        if marker is None:
            continue
        base = typing.get_args(hints[p.name])[0]
        if not (isinstance(base, type) and issubclass(base, pathlib.PurePath)):
            raise OutputError(f"task '{getattr(func, '__name__', func)}': output parameter '{p.name}' must be "
                              f"annotated Annotated[Path, Output(...)], not {base!r}",
                              hint="the task receives a local path to write its file to")
        if p.default is not inspect.Parameter.empty:
            raise OutputError(f"task '{getattr(func, '__name__', func)}': output parameter '{p.name}' takes no "
                              "default", hint="the library gives it a fresh path on every run")
        specs.append(OutputSpec(name=p.name, annotation=pathlib.Path, type_key="pathlib.Path", file=marker))
    return specs


def _unwrap_annotated(annotation: Any) -> tuple[Any, Data | None]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        markers = [e for e in extras if isinstance(e, Data)]
        if len(markers) > 1:  # one would be ignored (a Schema's contract, silently): say so instead
            raise ParameterError(
                f"{annotation} has {len(markers)} Data markers; give one",
                hint="pass the format and options to it, e.g. Schema(Model, format='csv')",
            )
        return base, markers[0] if markers else None
    return annotation, None


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def annotation_type_key(annotation: Any) -> str:
    """The registry key of an annotation: 'pandas.DataFrame', 'int', 'dict', 'object'..."""
    from dbnd_prefect.targets import type_key

    if annotation is inspect.Parameter.empty or annotation is Any:
        return "object"
    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is not None:
        annotation = origin
    if isinstance(annotation, type):
        if issubclass(annotation, pathlib.PurePath):
            return "pathlib.Path"
        for simple, key in _SIMPLE_KEYS:
            if annotation is simple:
                return key
        return type_key(annotation)
    return "object"


def _is_target_annotation(annotation: Any) -> bool:
    from dbnd_prefect.targets import Target

    return isinstance(annotation, type) and issubclass(annotation, Target)


def type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """`func`'s annotations with string annotations resolved; one that cannot be resolved (or that is no
    type, like a tuple literal `-> (DataFrame, DataFrame)`) stays as written or as evaluated."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:
        pass
    namespace = getattr(func, "__globals__", {})
    hints = {}
    for name, annotation in getattr(func, "__annotations__", {}).items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # noqa: S307 - what get_type_hints does, one at a time
            except Exception:
                pass
        hints[name] = annotation
    return hints


def _default_type(default: Any) -> Any:
    """The type a parameter without annotation takes from its default, as the reference does
    (`n=0` is an int, `when=timedelta(days=1)` a timedelta); `inspect.Parameter.empty` otherwise."""
    for simple, _ in _SIMPLE_KEYS:
        if type(default) is simple:
            return simple
    return inspect.Parameter.empty


def param_specs(func: Callable[..., Any]) -> list[ParamSpec]:
    """Typed parameter specs of `func`, resolving string annotations."""
    hints = type_hints(func)
    specs = []
    for p in inspect.signature(func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        raw = hints.get(p.name, p.annotation)
        if _output_marker(raw) is not None:  # a file the task writes: an output, not a parameter
            continue
        if raw is inspect.Parameter.empty and p.default is not inspect.Parameter.empty:
            raw = _default_type(p.default)
        base, marker = _unwrap_annotated(raw)
        base = _unwrap_optional(base)
        key = "dbnd_prefect.Target" if _is_target_annotation(base) else annotation_type_key(base)
        is_data = marker is not None or key in DATA_TYPE_KEYS or key in ("pathlib.Path", "dbnd_prefect.Target")
        specs.append(
            ParamSpec(
                name=p.name, annotation=base, type_key=key, default=p.default, kind=p.kind,
                is_data=is_data, data=marker,
            )
        )
    return specs


def _parse_result_names(result: str | Sequence[str] | None) -> list[str] | None:
    if result is None:
        return None
    # "name," is one output (a trailing comma, as in the reference)
    names = [n.strip() for n in result.split(",") if n.strip()] if isinstance(result, str) \
        else [str(n) for n in result]
    if not all(n.isidentifier() for n in names) or len(set(names)) != len(names):
        raise OutputError(f"result={result!r} must be distinct identifiers such as 'train, test'")
    return names


def output_specs(
    func: Callable[..., Any], result: str | Sequence[str] | None = None, formats: Mapping[str, str] | None = None
) -> list[OutputSpec]:
    """Named outputs of `func` from `result=`, a NamedTuple or Tuple return annotation, or 'result'."""
    hints = type_hints(func)
    ret = hints.get("return", inspect.signature(func).return_annotation)
    ret, marker = _unwrap_annotated(ret)
    names = _parse_result_names(result)
    formats = dict(formats or {})

    element_types: list[Any] | None = None
    if isinstance(ret, type) and issubclass(ret, tuple) and hasattr(ret, "_fields"):
        if names is None:
            names = list(ret._fields)
        element_types = [typing.get_type_hints(ret).get(f, Any) for f in ret._fields]
    elif isinstance(ret, tuple) and ret:  # a tuple literal, `-> (DataFrame, DataFrame)`, as the reference allows
        element_types = list(ret)
        if names is None:
            names = [f"result_{i}" for i in range(1, len(ret) + 1)]
    elif typing.get_origin(ret) in (tuple, typing.Tuple):
        args = [a for a in typing.get_args(ret) if a is not Ellipsis]
        if args and not (len(typing.get_args(ret)) == 2 and typing.get_args(ret)[1] is Ellipsis):
            element_types = args
            if names is None:
                names = [f"result_{i}" for i in range(1, len(args) + 1)]

    if names is None:
        names = ["result"]
        element_types = [ret]
    if element_types is None or len(element_types) != len(names):
        element_types = [ret if len(names) == 1 else Any] * len(names)

    unknown = set(formats) - set(names)
    if unknown:
        raise OutputError(f"output_formats names {sorted(unknown)} which are not outputs; outputs are {names}")
    specs = []
    for name, tp in zip(names, element_types):
        tp, m = _unwrap_annotated(tp)
        fmt = formats.get(name) or (m.format if m else None) or (marker.format if marker and len(names) == 1 else None)
        data = m or (marker if len(names) == 1 else None)
        spec = OutputSpec(name=name, annotation=tp, type_key=annotation_type_key(tp), format=fmt, data=data)
        _check_output_format(func, spec)
        specs.append(spec)
    return specs


def _check_output_format(func: Callable[..., Any], spec: OutputSpec) -> None:
    """OutputError at decoration for a forced format that is unknown or cannot hold the declared type."""
    from dbnd_prefect.errors import FormatError
    from dbnd_prefect.targets.formats import resolve_format

    if spec.format is None:
        return
    where = f"task '{getattr(func, '__name__', func)}', output '{spec.name}'"
    try:
        fmt, _ = resolve_format(spec.format)
    except FormatError as exc:
        raise OutputError(exc.message, hint=exc.hint).add_context(where) from None
    frame_folder = spec.type_key == "dict" and fmt.can_save("pandas.DataFrame")  # Dict[str, DataFrame]
    if spec.type_key not in ("object", "pathlib.Path", "dbnd_prefect.Target") and not fmt.can_save(spec.type_key) \
            and not frame_folder:
        raise OutputError(
            f"{where}: format '{spec.format}' cannot store {spec.type_key}",
            hint=f"{fmt.name} stores {', '.join(fmt.save_types)}; pick another format or drop it",
        )


def input_target(spec: ParamSpec | None, value: Any) -> Any:
    """The Target a data parameter reads `value` (a path, URI or Target) from.

    The annotation's `Data(format=..., load_options=...)` apply whatever route the value came by;
    a Target's own format and options win over the annotation's.
    """
    from dbnd_prefect.targets import Target

    data = spec.data if spec is not None else None
    if data is None or (data.format is None and not data.load_options):
        return value if isinstance(value, Target) else Target(value)
    if isinstance(value, Target):
        return Target(value, format=value._forced or data.format,
                      load_options={**data.load_options, **value.load_options})
    return Target(value, format=data.format, load_options=dict(data.load_options) or None)


def split_outputs(task_name: str, specs: Sequence[OutputSpec], value: Any) -> dict[str, Any]:
    """Map a task's return value onto its declared outputs, or raise OutputError saying why not."""
    names = [s.name for s in specs]
    if len(specs) == 1:
        return {names[0]: value}
    if isinstance(value, Mapping):
        missing, extra = set(names) - set(value), set(value) - set(names)
        if missing or extra:
            raise OutputError(
                f"task '{task_name}' returned a dict with keys {sorted(value)}, but its outputs are {names}",
                hint="return exactly these keys or change result=",
            )
        return {n: value[n] for n in names}
    if isinstance(value, (tuple, list)) and len(value) == len(names):
        return dict(zip(names, value))
    got = f"{type(value).__name__} of length {len(value)}" if isinstance(value, (tuple, list)) else type(value).__name__
    raise OutputError(
        f"task '{task_name}' declares {len(names)} outputs {names} but returned a {got}",
        hint="return a tuple with one value per output, or change result= / the return annotation",
    )
