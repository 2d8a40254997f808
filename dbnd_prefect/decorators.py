"""`@task` and `@pipeline`: typed functions as Prefect tasks and flows, and how calls are wired.

A call to a task
- inside a pipeline submits it to the pipeline's task runner and returns `OutputRef`s at once,
  so independent branches run concurrently and outputs pass in memory;
- inside a task or a plain Prefect flow runs it there and returns its value;
- anywhere else (script, notebook, test) runs it as a one-task flow and returns its value.
A pipeline is a Prefect flow; called inside another pipeline it is a nested flow.
"""

from __future__ import annotations

import contextvars
import datetime
import functools
import inspect
import threading
from typing import Any, Callable, Mapping, Sequence, TypeVar, overload

import prefect
from prefect.context import FlowRunContext, TaskRunContext

from dbnd_prefect import identity, task_registry
from dbnd_prefect.calls import NO_OPTIONS, BoundCall, CallOptions, bind_call, call_with, split_call_options
from dbnd_prefect.errors import ParameterError
from dbnd_prefect.flow_parameters import pipeline_flow_signature, run_flow_body
from dbnd_prefect.handoff import handed_off, take_back
from dbnd_prefect.outputs import OutputRef, TaskOutputs
from dbnd_prefect.params import ParamSpec, check_required, coerce, file_outputs, output_specs, param_specs
from dbnd_prefect.prefect_api import prefect_session
from dbnd_prefect.run_profile import profile_applied
from dbnd_prefect.run_context import RunContext, current_run, default_task_runner, ensure_run
from dbnd_prefect.wiring import PipelineScope, current_scope, map_arguments, resolve_refs

F = TypeVar("F", bound=Callable[..., Any])

# The call-site options (`task_version=`, `override=`...) of a top-level task call, for its one-task flow.
_top_call_options: contextvars.ContextVar[CallOptions] = contextvars.ContextVar("dbnd_top_call", default=NO_OPTIONS)


def _relaxed(sig: inspect.Signature) -> inspect.Signature:
    """`sig` with positional-only parameters made positional-or-keyword, so values can be given by name
    (from configuration, `--set`, Prefect's parameter binding)."""
    return sig.replace(parameters=[
        p.replace(kind=p.POSITIONAL_OR_KEYWORD) if p.kind == p.POSITIONAL_ONLY else p
        for p in sig.parameters.values()
    ])


def _check_supported(name: str, func: Callable[..., Any], sig: inspect.Signature) -> None:
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        raise ParameterError(f"{name}: async functions are not supported as dbnd tasks or pipelines yet",
                             hint="make it a plain `def`; independent tasks in a pipeline already run concurrently")
    variadic = [p for p in sig.parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if variadic:
        shown = ", ".join(("*" if p.kind == p.VAR_POSITIONAL else "**") + p.name for p in variadic)
        raise ParameterError(f"{name}: {shown} cannot be configured, fingerprinted or stored",
                             hint="use a list or dict parameter instead")


_OWN_TASK_OPTIONS = ("result", "task_version", "output_formats", "non_significant", "versioned", "task_env")


def _check_options(kind: str, name: str, options: Mapping[str, Any], prefect_cls: type, own: Sequence[str]) -> None:
    """ParameterError for a decorator option that neither dbnd nor Prefect's Task/Flow knows."""
    from dbnd_prefect.errors import suggest

    known = [p for p in inspect.signature(prefect_cls.__init__).parameters if p not in ("self", "fn")]
    for option in options:
        if option not in known:
            raise ParameterError(f"@{kind} {name}: unknown option '{option}'{suggest(option, [*own, *known])}",
                                 hint=f"dbnd options: {', '.join(own)}; the rest go to prefect.{prefect_cls.__name__}")


class _Callable:
    """What tasks and pipelines share: specs, configuration binding and the undecorated function."""

    func: Callable[..., Any]
    name: str
    params: list[ParamSpec]

    def _init_specs(self, func: Callable[..., Any], name: str | None, params: list[ParamSpec] | None = None) -> None:
        self.func = func
        self.name = name or func.__name__
        self.params = param_specs(func) if params is None else params
        self.param_map = {p.name: p for p in self.params}
        self.task_id = identity.identity_of(func)  # the same wherever the module was imported from
        self._func_signature = inspect.signature(func)
        self._signature = _relaxed(self._func_signature)
        _check_supported(self.name, func, self._func_signature)

    def run(self, *args: Any, **options: Any) -> Any:
        """Run this task or pipeline as `dbnd_prefect.run` does (`set=`, `override=`, `env=`, `conf_files=`,
        `task_version=`), call arguments given positionally or as `set` values; its `RunResult`."""
        from dbnd_prefect.run_api import run

        if args:
            bound = self._signature.bind_partial(*args).arguments
            options["set"] = {**bound, **(options.get("set") or {})}
        return run(self, **options)

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], run: RunContext | None) -> dict[str, Any]:
        """Parameter values for one call: --override > call site > configuration > default."""
        try:
            explicit = self._signature.bind_partial(*args, **kwargs).arguments
        except TypeError as exc:
            raise ParameterError(
                f"{self.name}(): {exc}", hint=f"parameters are {[p.name for p in self.params]}"
            ) from None
        configured: Mapping[str, Any] = run.task_section(self.name) if run else {}
        overrides: Mapping[str, Any] = run.overrides_for(self.name) if run else {}
        values: dict[str, Any] = {}
        for spec in self.params:
            if spec.name in overrides:
                value = overrides[spec.name].value
            elif spec.name in explicit:
                value = explicit[spec.name]
            elif spec.name in configured:
                value = configured[spec.name].value
            elif not spec.required:
                value = spec.default
            else:
                continue
            if spec.is_data and run is not None and isinstance(value, str) and "@" in value:
                from dbnd_prefect.history.selectors import is_selector, resolve_selector

                if is_selector(value):
                    value = resolve_selector(value, run.data_root, run.env)
            values[spec.name] = coerce(self.name, spec, value)
        check_required(self.name, self.params, values)
        return values

    def call_function(self, arguments: Mapping[str, Any]) -> Any:
        """Call the undecorated function, honouring positional-only parameters."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for p in self._func_signature.parameters.values():
            if p.name in arguments:
                if p.kind == p.POSITIONAL_ONLY:
                    args.append(arguments[p.name])
                else:
                    kwargs[p.name] = arguments[p.name]
        return self.func(*args, **kwargs)


class DbndTask(_Callable):
    """A typed function run as a Prefect task, with its outputs written to typed targets."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        result: str | Sequence[str] | None = None,
        task_version: str | None = None,
        output_formats: Mapping[str, str] | str | None = None,
        non_significant: Sequence[str] = (),
        versioned: bool = True,
        task_env: str | None = None,
        **prefect_options: Any,
    ) -> None:
        self._init_specs(func, prefect_options.pop("name", None))
        _check_options("task", self.name, prefect_options, prefect.Task, _OWN_TASK_OPTIONS)
        if isinstance(output_formats, str):
            names = [o.name for o in output_specs(func, result)]
            output_formats = {n: output_formats for n in names}
        files = file_outputs(func)
        returned = output_specs(func, result, output_formats)
        if files and result is None and inspect.signature(func).return_annotation in (None, "None"):
            returned = []  # `-> None`: the task's outputs are the files it writes
        self.outputs = [*returned, *files]
        if files and not versioned:
            raise ParameterError(f"@task {self.name}: output files ({', '.join(f.name for f in files)}) are stored "
                                 "and versioned; versioned=False keeps outputs in memory only",
                                 hint="drop versioned=False, or return the value instead of writing a file")
        if files:  # callers never pass them: they are not parameters of a call
            self._signature = self._signature.replace(parameters=[
                p for p in self._signature.parameters.values() if p.name not in {f.name for f in files}])
        self.task_version = None if task_version is None else str(task_version)
        if task_env is not None and (not isinstance(task_env, str) or not task_env or not versioned):
            raise ParameterError(f"@task {self.name}: task_env={task_env!r} " + (
                "must name an environment profile" if versioned else
                "runs the task in another process, which hands its outputs back through storage; "
                "versioned=False keeps them in memory only"),
                hint="e.g. task_env=\"k8s\" (see dbnd show-env)" if versioned else "drop versioned=False")
        self.task_env = task_env  # the environment profile this task runs in (see remote_tasks.py)
        if isinstance(non_significant, str):
            non_significant = [n.strip() for n in non_significant.split(",") if n.strip()]
        unknown = set(non_significant) - set(self.param_map)
        if unknown:
            raise ParameterError(f"@task {self.name}: non_significant names unknown parameters {sorted(unknown)}")
        self.non_significant = frozenset(non_significant)
        self._code_fingerprint: str | None = None
        self._variants: dict[Any, prefect.Task] = {}
        self._variants_lock = threading.Lock()

        from dbnd_prefect.versioning.policy import SignaturePolicy

        def body(call: BoundCall) -> TaskOutputs:
            from dbnd_prefect.execution import run_task_body  # the data stack loads with the first run

            return run_task_body(call)

        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            setattr(body, attr, getattr(func, attr, None))
        self.versioned = versioned
        if versioned:
            from prefect.serializers import PickleSerializer

            # the record holds a TaskOutputs (names and URIs, never the values): the standard pickle
            # writes it in 10 µs where Prefect's default cloudpickle takes 15 µs
            prefect_options.setdefault("result_serializer", PickleSerializer(picklelib="pickle"))
            self.prefect_task = prefect.Task(
                fn=body, name=self.name, cache_policy=SignaturePolicy(), persist_result=True, **prefect_options
            )
        else:
            from prefect.cache_policies import NO_CACHE

            self.prefect_task = prefect.Task(
                fn=body, name=self.name, cache_policy=NO_CACHE, persist_result=False, **prefect_options
            )
        functools.update_wrapper(self, func)
        task_registry.register(self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled by reference (module and name) where the module can be imported, so a task call sent
        to another process (a Dask worker) finds the same definition there; by value otherwise."""
        module, qualname = getattr(self.func, "__module__", None), self.func.__qualname__
        if module and module != "__main__" and "<locals>" not in qualname:
            return (_import_task, (module, qualname, self.task_id))
        return super().__reduce_ex__(protocol)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_variants": {}, "_variants_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _variants_lock=threading.Lock())

    @property
    def code_fingerprint(self) -> str:
        if self._code_fingerprint is None:
            from dbnd_prefect.fingerprint import fingerprint_code

            self._code_fingerprint = fingerprint_code(self.func)
        return self._code_fingerprint

    def task_version_for(self, run: RunContext | None) -> str | None:
        if run is None:
            return self.task_version
        configured = run.task_section(self.name).get("task_version")
        global_value = run.config.get_value("run", "task_version")
        if configured is not None and (global_value is None or configured.rank >= global_value.rank):
            from dbnd_prefect.run_context import _resolve_version

            return _resolve_version(configured.value)  # the task's own, unless a higher layer set run's
        return run.task_version or self.task_version

    def overriding(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`override={...}` of a call: values of this task's parameters, coerced, beating every other source."""
        from dbnd_prefect.errors import suggest

        out = {}
        for key, value in values.items():
            name = key[len(self.name) + 1:] if key.startswith(self.name + ".") else key
            spec = self.param_map.get(name)
            if spec is None:
                raise ParameterError(f"{self.name}(override=...): unknown parameter '{key}'{suggest(name, self.param_map)}",
                                     hint=f"parameters of {self.name}: {', '.join(self.param_map) or 'none'}")
            out[name] = coerce(self.name, spec, value)
        return out

    def signature_for(self, inputs: Mapping[str, Any], run: RunContext | None, options: Any = None) -> Any:
        """The signature of a run of this task with these (unloaded) inputs (and call-site options)."""
        from dbnd_prefect.fingerprint.signature import compute_signature
        from dbnd_prefect.versioning.inputs import fingerprint_input

        full = bool(run and run.config.get("run", "input_fingerprint", "fast") == "content")
        fingerprints = {
            name: fingerprint_input(self.param_map.get(name), value, full)
            for name, value in inputs.items()
            if name not in self.non_significant
        }
        version = options.task_version if options is not None and options.task_version is not None \
            else self.task_version_for(run)
        target_date = options.target_date if options is not None and options.target_date is not None \
            else (run.target_date.isoformat() if run is not None and run.target_date else None)
        return compute_signature(self.task_id, self.code_fingerprint, fingerprints, version,
                                 run.env if run else "local", target_date)

    def prefect_for(self, run: RunContext, run_name: str | None = None) -> prefect.Task:
        """The Prefect task that keeps its cache records beside this run's data.

        Unversioned tasks persist nothing, but get the same saved storage block: Prefect resolves an
        unsaved default storage's path on every result it creates.
        """
        key = id(run.storage.result_storage)
        variant = self._variants.get(key)
        if variant is None:
            with self._variants_lock:
                variant = self._variants.get(key)
                if variant is None:
                    variant = self.prefect_task.with_options(result_storage=run.storage.result_storage)
                    self._variants = {key: variant}  # one run's storage at a time is what is ever used
        return variant if run_name is None else variant.with_options(task_run_name=run_name)

    def _run_in_env(self, run: RunContext | None) -> RunContext | None:
        """The run a call of this task belongs to: `run`, or, for a task with another `task_env`, its
        counterpart in that environment (the profile's data root, records and signature environment)."""
        if self.task_env is None or run is None or run.env == self.task_env:
            return run
        from dbnd_prefect.remote_tasks import run_in_env

        return run_in_env(run, self.task_env)

    def _wrap_outputs(self, future: Any, call: BoundCall) -> Any:
        refs = [OutputRef(future, o.name, call.digest) for o in self.outputs]
        if len(refs) == 1:
            return refs[0]
        ret = self._signature.return_annotation
        if isinstance(ret, type) and issubclass(ret, tuple) and hasattr(ret, "_fields") \
                and list(ret._fields) == [o.name for o in self.outputs]:
            return ret(*refs)
        return tuple(refs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        scope = current_scope()
        if scope is not None and TaskRunContext.get() is None:
            run = self._run_in_env(current_run())
            call = bind_call(self, args, kwargs, run)
            return self._wrap_outputs(scope.submit(call, run), call)
        if FlowRunContext.get() is not None or TaskRunContext.get() is not None:
            with ensure_run() as outer:
                run = self._run_in_env(outer)
                call = bind_call(self, args, kwargs, run)
                if not self.versioned:
                    return self.prefect_for(run, call.run_name)(call=call).value()
                # same signature, same outputs: a second call in this run is served by the first
                done = run.calls_in_tasks.get(call.digest)
                if done is None:
                    from dbnd_prefect.versioning.verify import drop_if_broken

                    drop_if_broken(call, run)
                    done = run.calls_in_tasks[call.digest] = self.prefect_for(run, call.run_name)(call=call)
                return done.value()
        kwargs, options = split_call_options(self, kwargs)
        token = _top_call_options.set(options)
        try:
            return self.as_pipeline()(*args, **kwargs)
        finally:
            _top_call_options.reset(token)

    def map(self, *args: Any, **kwargs: Any) -> list[Any]:
        """One call of this task per element, inside a pipeline: Prefect's `Task.map` for dbnd tasks.

        Iterable arguments are zipped (all of the same length); strings, bytes, mappings, other
        values and `prefect.unmapped(x)` go whole to every call. An upstream output is waited for and
        mapped over like any other value. Returns what each call returns (output references), in order.
        """
        if current_scope() is None or TaskRunContext.get() is not None:
            raise ParameterError(f"{self.name}.map() works inside a @pipeline body only",
                                 hint=f"call it from a pipeline, or loop: [{self.name}(x) for x in items]")
        try:
            bound = self._signature.bind_partial(*args, **kwargs).arguments
        except TypeError as exc:
            raise ParameterError(f"{self.name}.map(): {exc}",
                                 hint=f"parameters are {[p.name for p in self.params]}") from None
        return [self(**arguments) for arguments in map_arguments(self.name, bound)]

    @functools.cached_property
    def _single_task_pipeline(self) -> "DbndPipeline":
        task = self

        def run_one(**arguments: Any) -> Any:
            # the flow bound the arguments already, with the task's own section: no second binding
            scope, run = current_scope(), task._run_in_env(current_run())
            options = _top_call_options.get()  # the flow body runs in the caller's context
            if options.override:
                arguments = {**arguments, **task.overriding(options.override)}
            call = call_with(task, arguments, run, options)
            return task._wrap_outputs(scope.submit(call, run), call)

        run_one.__signature__ = self._signature.replace(return_annotation=inspect.Signature.empty)  # type: ignore
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            setattr(run_one, attr, getattr(self.func, attr, None))
        return DbndPipeline(run_one, name=self.name, _register=False, _params=self.params)

    def as_pipeline(self) -> "DbndPipeline":
        """This task as a flow of its own: what a top-level call or `dbnd run TASK` runs."""
        return self._single_task_pipeline

    def __repr__(self) -> str:
        return f"<dbnd task {self.name}>"


class DbndPipeline(_Callable, prefect.Flow):
    """A function that wires tasks, run as a Prefect flow."""

    def __init__(self, func: Callable[..., Any], *, _register: bool = True, _params: list[ParamSpec] | None = None,
                 **prefect_options: Any) -> None:
        self._init_specs(func, prefect_options.get("name"), _params)
        result = prefect_options.pop("result", None)
        _check_options("pipeline", self.name, prefect_options, prefect.Flow, ("result",))
        # names of what the pipeline returns (a tuple is matched by position), for run results and the CLI
        self.result_names = [o.name for o in output_specs(func, result)] if result is not None else None
        loose = pipeline_flow_signature(self)  # with the TASK.PARAM settings deployments may give
        pipeline = self

        def body(*args: Any, **kwargs: Any) -> Any:
            return run_flow_body(pipeline, loose, args, kwargs,
                                 lambda arguments: pipeline._run_body({k: take_back(v) for k, v in arguments.items()}))

        body.__signature__ = loose  # type: ignore[attr-defined]
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            setattr(body, attr, getattr(func, attr, None))
        prefect_options.setdefault("name", self.name)
        prefect_options.setdefault("validate_parameters", False)
        prefect_options.setdefault("persist_result", False)
        self.names_task_runner = prefect_options.get("task_runner") is not None  # else: the parent's, when nested
        if not self.names_task_runner:
            prefect_options["task_runner"] = default_task_runner()
        prefect.Flow.__init__(self, fn=body, **prefect_options)
        functools.update_wrapper(self, func, updated=())
        if _register:
            task_registry.register(self)

    def _run_body(self, arguments: dict[str, Any]) -> Any:
        with ensure_run() as run:
            arguments = self.bind((), arguments, run)
            arguments = {name: self._as_target(name, value) for name, value in arguments.items()}
            flow_ctx = FlowRunContext.get()
            flow_run_id = str(flow_ctx.flow_run.id) if flow_ctx else None
            # nested pipelines add their task runs to the root's record; a retried root writes it again
            is_root = run.flow_run_id in (None, flow_run_id)
            if is_root:
                run.flow_run_id = flow_run_id
                run.flow_run_name = flow_ctx.flow_run.name if flow_ctx else None
            started = datetime.datetime.now(datetime.timezone.utc)
            state = "Failed"
            with PipelineScope.enter() as scope:
                try:
                    returned = self.call_function(arguments)
                    scope.wait_all()
                    resolved = resolve_refs(returned)
                    state = "Completed"
                    return resolved
                finally:
                    summaries = scope.summaries()
                    run.task_runs.extend(summaries)
                    from dbnd_prefect.prefect_ui.data_flow import publish  # artifacts and lineage events (#14)

                    publish(self.name, summaries, flow_run_id, state)
                    if is_root:
                        from dbnd_prefect.history.run_record import write_run_record

                        run.record_uri = write_run_record(run, self.name, arguments, state, started)

    def _as_target(self, name: str, value: Any) -> Any:
        from dbnd_prefect.targets import Target

        spec = self.param_map.get(name)
        if spec is not None and spec.is_data and isinstance(value, str) and spec.type_key != "pathlib.Path":
            options = {"format": spec.data.format} if spec.data and spec.data.format else {}
            return Target(value, **options)
        return value

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The parameters as the Prefect API records them on the flow run: credentials removed from text (a URI's
        user info, keys in query strings), secret-named values masked; the run itself gets the real values."""
        from dbnd_prefect.history.manifest import mask_secret_values

        return mask_secret_values(super().serialize_parameters(parameters))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run the pipeline and return its real values."""
        scope = current_scope()
        if scope is not None and scope.dry:
            return self.call_function(self.bind(args, kwargs, current_run()))
        if FlowRunContext.get() is not None or TaskRunContext.get() is not None:
            # Output references pass unresolved (handed off in process), so the nested pipeline's tasks
            # wait on them, fingerprint them by their producer's signature and record their lineage.
            arguments = self._signature.bind_partial(*args, **kwargs).arguments
            with handed_off(_locations(arguments)) as passed:
                from dbnd_prefect.task_runners import nested_flow

                return prefect.Flow.__call__(nested_flow(self), **passed)  # on its parent's Dask cluster
        with ensure_run() as run:
            arguments = self.bind(args, kwargs, run)
            from dbnd_prefect.prefect_ui.data_flow import sent_after, wait_until_sent

            wait_until_sent()  # an earlier run's artifact writes would make this run's creation wait 2 s
            with sent_after(), handed_off(_locations(arguments)) as passed, prefect_session(run.config), \
                    profile_applied(self, run) as flow:  # the profile's task runner and env vars
                return prefect.Flow.__call__(flow, **passed)

    def __repr__(self) -> str:
        return f"<dbnd pipeline {self.name}>"


def _import_task(module: str, qualname: str, task_id: str) -> "DbndTask":
    """The task `module.qualname` (what a pickled task reference names), checked to be the same definition."""
    import importlib

    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not isinstance(found, DbndTask) or found.task_id != task_id:
        raise ParameterError(f"{module}.{qualname} is not the dbnd task {task_id} in this process",
                             hint="run the same version of the project's code on every worker")
    return found


def _locations(arguments: Mapping[str, Any]) -> dict[str, Any]:
    from dbnd_prefect.targets import Target

    return {k: (v.uri if isinstance(v, Target) else v) for k, v in arguments.items()}


@overload
def task(func: F) -> DbndTask: ...
@overload
def task(func: None = None, **options: Any) -> Callable[[F], DbndTask]: ...
def task(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a typed function a task: `@task` or `@task(result="train, test", task_version="2", retries=2)`.

    Options: `result` (output names), `task_version`, `output_formats` (a format, or one per output),
    `non_significant` (parameters left out of the signature), `task_env` (an environment profile the task
    runs in, as a deployment run on its work pool), and Prefect task options (name, tags, retries,
    retry_delay_seconds, timeout_seconds, log_prints, ...).
    """
    if func is None:
        return lambda f: DbndTask(f, **options)
    return DbndTask(func, **options)


@overload
def pipeline(func: F) -> DbndPipeline: ...
@overload
def pipeline(func: None = None, **options: Any) -> Callable[[F], DbndPipeline]: ...
def pipeline(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a function that wires tasks a pipeline (a Prefect flow): `@pipeline` or `@pipeline(name=...)`.

    Prefect flow options pass through (name, description, retries, timeout_seconds, log_prints,
    task_runner, ...).
    """
    if func is None:
        return lambda f: DbndPipeline(f, **options)
    return DbndPipeline(func, **options)
