"""What tracking does around one dbnd task run: contracts and profiles of its data inputs and outputs,
its metrics, files and logged profiles; all of it goes into the manifest (`tracking`) and the UI.

The run path calls, in order:

    tracking = TaskTracking(task, run.tracking, output_folder)
    loaded = tracking.inputs(arguments, loaded)        # contracts (violation: input error), profiles
    with tracking.collecting() as metrics:             # log_metric / log_dataframe / log_artifact
        returned = task.call_function(loaded)
    values = tracking.outputs(values)                  # contracts (violation: nothing written), profiles
    manifest["tracking"] = tracking.record()
    tracking.publish()                                 # the profiles artifact
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import pathlib
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from dbnd_prefect.tracking.contracts import ContractSite, check_contract, contract_of
from dbnd_prefect.tracking.metrics import MetricLog, collecting_metrics
from dbnd_prefect.tracking.profiling import ProfileOptions, profile_data, profiler_for

if TYPE_CHECKING:
    from dbnd_prefect.config.tracking_settings import TrackingSettings

_current: contextvars.ContextVar["TaskTracking | None"] = contextvars.ContextVar("dbnd_task_tracking", default=None)


def current_tracking() -> "TaskTracking | None":
    """The tracking of the dbnd task body running in this context, or None."""
    return _current.get()


class TaskTracking:
    """Contracts, profiles, metrics and files of one task run."""

    def __init__(self, task: Any, settings: "TrackingSettings", output_folder: str | None = None) -> None:
        self.task_name = task.name
        self.task = task
        self.settings = settings
        self.metric_log = MetricLog()
        self.profiles: dict[str, dict[str, dict[str, Any]]] = {"inputs": {}, "outputs": {}}
        self.logged_profiles: dict[str, dict[str, Any]] = {}
        self.files: dict[str, str] = {}
        self.output_folder = output_folder  # where the outputs and `log_artifact` files go

    # --- inputs and outputs -----------------------------------------------------------------

    def inputs(self, arguments: Mapping[str, Any], loaded: Mapping[str, Any]) -> dict[str, Any]:
        """`loaded` with each input that declares a Schema validated; each data input profiled.

        A contract violation is a DataContractError naming the parameter and URI (bad input, exit code 2).
        """
        checked = dict(loaded)
        for name, value in loaded.items():
            spec = self.task.param_map.get(name)
            if spec is None or value is None or not (spec.is_data or _is_frame(value)):
                continue
            uri = _input_uri(arguments.get(name))
            contract = None
            schema = contract_of(spec.data)
            if schema is not None:
                checked[name], contract = self._check(schema, value, ContractSite(self.task_name, name, "parameter",
                                                                                  uri), is_input=True)
            self._profile("inputs", name, checked[name], spec.data, uri, contract)
        return checked

    def outputs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` with each output that declares a Schema validated (before anything is written); profiled.

        A contract violation is a DataContractError naming the output (a failed task; nothing is written).
        """
        checked = dict(values)
        for spec in self.task.outputs:
            value = values.get(spec.name)
            if value is None:
                continue
            contract = None
            schema = contract_of(spec.data)
            if schema is not None:
                checked[spec.name], contract = self._check(schema, value, ContractSite(self.task_name, spec.name,
                                                                                       "output"), is_input=False)
            self._profile("outputs", spec.name, checked[spec.name], spec.data, None, contract)
        return checked

    def _check(self, schema: Any, value: Any, where: ContractSite, is_input: bool) -> tuple[Any, dict[str, Any]]:
        from dbnd_prefect.errors import DataContractError

        try:
            return check_contract(schema, value, where)
        except DataContractError as error:
            result = getattr(error, "contract", None)
            if result is not None:  # the failed result is shown too, in the manifest-less failure's artifact
                self._profile("inputs" if is_input else "outputs", where.name, value, None, where.uri, result,
                              force=True)
                self.publish()
            raise

    def _profile(self, side: str, name: str, value: Any, data: Any, uri: str | None,
                 contract: dict[str, Any] | None, force: bool = False) -> None:
        wanted = getattr(data, "profile", None)
        enabled = self.settings.profile if wanted is None else wanted
        profile: dict[str, Any] | None = None
        if (enabled or force) and profiler_for(value) is not None:
            histograms = getattr(data, "histograms", None)
            options = ProfileOptions(
                with_histograms=self.settings.histograms if histograms is None else histograms,
                sample_rows=self.settings.sample_rows, preview_rows=self.settings.preview_rows,
                top_values=self.settings.top_values, histogram_bins=self.settings.histogram_bins,
                automatic=wanted is None and not force)
            profile = profile_data(value, options)
        if profile is None and contract is None:
            return
        profile = dict(profile or {})
        if uri:
            profile["uri"] = uri
        if contract is not None:
            profile["contract"] = contract
        self.profiles[side][name] = profile

    # --- the task body ----------------------------------------------------------------------

    @contextlib.contextmanager
    def collecting(self) -> Iterator[dict[str, Any]]:
        """Run the task body with this tracking in effect; yields its metrics' latest values (after the block)."""
        token = _current.set(self)
        try:
            with collecting_metrics(self.metric_log) as latest:
                yield latest
        finally:
            _current.reset(token)

    # --- results ----------------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """The manifest's `tracking` entry: metric series, profiles (inputs, outputs, logged) and files."""
        return {
            "metrics": {key: list(points) for key, points in self.metric_log.series.items()},
            "profiles": {side: dict(found) for side, found in self.profiles.items()},
            "logged_profiles": dict(self.logged_profiles),
            "files": dict(self.files),
        }

    def publish(self) -> None:
        """The automatic profiles as one markdown artifact, `profiles-{task}` (one API call per task run)."""
        publish_profiles(self.task_name, self.profiles)


def publish_profiles(task_name: str, profiles: Mapping[str, Mapping[str, Any]]) -> None:
    """A task run's profiles (`{"inputs": {name: profile}, "outputs": {...}}`, as its manifest records them) as
    one markdown artifact, `profiles-{task}`; nothing when there are none."""
    from dbnd_prefect.tracking.publish import artifact_key, publish_markdown
    from dbnd_prefect.tracking.render import profile_markdown

    sections = [profile_markdown(f"{task_name} {kind} '{name}'", profile)
                for side, kind in (("inputs", "input"), ("outputs", "output"))
                for name, profile in (profiles.get(side) or {}).items()]
    if sections:
        publish_markdown(artifact_key("profiles", task_name), "\n\n".join(sections),
                         description=f"data profiles of the inputs and outputs of task **{task_name}**")


def _is_frame(value: Any) -> bool:
    return profiler_for(value) is not None


def _input_uri(argument: Any) -> str | None:
    """The URI an input was loaded from (credentials removed), or None for a value passed in memory."""
    from dbnd_prefect.outputs import OutputRef, TaskOutputs
    from dbnd_prefect.redaction import redact

    if isinstance(argument, OutputRef) and isinstance(argument.source, TaskOutputs):
        stored = argument.source.stored.get(argument.name)
        return stored.uri if stored is not None else None
    uri = getattr(argument, "uri", None)
    if isinstance(uri, str):
        return redact(uri)
    if isinstance(argument, (str, os.PathLike)):
        text = os.fspath(argument)
        return redact(text if "://" in text else str(pathlib.Path(text).resolve()))
    return None
