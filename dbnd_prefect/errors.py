"""One family of user-facing errors, each carrying its context as fields and rendered once.

Every error a user can fix by changing input, configuration or code is a `DbndError`. It holds the
problem (`problem`), what to do about it (`hint`), and where it happened as fields (`task`,
`parameter`, `uri`, `source`) plus the places it passed through on the way out (`places`, outermost
first). Code that knows where an error happened adds that to the error itself (`add_context`) rather
than raising a new one, so class, hint, traceback and cause stay intact. The edge renders it once:
the CLI prints `render()` on one line and exits with `exit_code`; a Python caller sees the same text
as `str(error)`.
"""

from __future__ import annotations

import difflib
from typing import Iterable, TypeVar

E = TypeVar("E", bound="DbndError")


class DbndError(Exception):
    """Base of all errors a user can act on."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, task: str | None = None,
                 parameter: str | None = None, uri: str | None = None, source: str | None = None) -> None:
        self.problem = message
        self.hint = hint
        self.task = task
        self.parameter = parameter
        self.uri = uri
        self.source = source  # where a configured value came from: "dbnd.toml:12", "--set ..."
        self.places: list[str] = []
        super().__init__(message)

    @property
    def message(self) -> str:
        """The problem with the places it passed through in front: `task 'x', parameter 'y': no such file`."""
        return ": ".join([*self.places, self.problem])

    def render(self) -> str:
        """The one line a user reads: places, problem and, in brackets, the fix."""
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __str__(self) -> str:
        return self.render()

    def add_context(self: E, where: str, *, task: str | None = None, parameter: str | None = None,
                    uri: str | None = None, source: str | None = None) -> E:
        """Put `where` (e.g. "task 'train', parameter 'data'") in front of the places; returns the error.

        `task`, `parameter`, `uri` and `source` fill the fields not set yet.
        """
        self.places.insert(0, where)
        self.args = (self.message,)
        self.task = self.task or task
        self.parameter = self.parameter or parameter
        self.uri = self.uri or uri
        self.source = self.source or source
        return self

    def with_suffix(self: E, text: str) -> E:
        """Add `text` after the problem (e.g. " at dbnd.toml:3"); returns the error."""
        self.problem = f"{self.problem}{text}"
        self.args = (self.message,)
        return self


def close_names(name: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The names among `candidates` closest to `name` (for "did you mean" hints), best first."""
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=cutoff)


def suggest(name: str, valid: Iterable[str]) -> str:
    """A "; did you mean 'x'?" suffix naming the closest valid name, or an empty string."""
    close = close_names(name, valid, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class ConfigError(DbndError):
    """Malformed or unknown configuration: a file, a key, a `--set` value, an environment."""


class ParameterError(DbndError):
    """A task parameter that is unknown, missing, or cannot be coerced to its declared type."""


class TaskNotFoundError(DbndError):
    """A task or pipeline name that cannot be found."""


class TargetError(DbndError):
    """A data target that cannot be read or written: missing file, bad URI, parse failure."""


class FormatError(TargetError):
    """A file format that is unknown or cannot handle the given type."""


class DataContractError(DbndError):
    """Data that violates the schema its parameter or output declares (`Annotated[DataFrame, Schema(...)]`)."""

    column: str | None = None
    check: str | None = None


class OutputError(DbndError):
    """A task's return value that does not match its declared outputs."""


class TaskFailedError(DbndError):
    """A task body raised; the run failed."""

    exit_code = 1


class UnfingerprintableValueError(DbndError, ValueError):
    """A value that can be neither fingerprinted by content nor pickled."""

    def __init__(self, type_name: str, reason: str) -> None:
        self.type_name = type_name
        self.reason = reason
        self.path: list[str] = []  # filled in while the error unwinds through containers
        super().__init__(f"cannot fingerprint a value of type {type_name}: {reason}")

    def render(self) -> str:
        where = f" at {''.join(self.path)}" if self.path else ""
        return (
            f"cannot fingerprint a value of type {self.type_name}{where}: {self.reason} "
            "(pass it as data the task can load, exclude it from the task's signature, or make it picklable)"
        )


def is_input_error(exc: BaseException) -> bool:
    """True for an error in a task's input data (found while loading it): bad input, exit code 2.

    Such an error carries the task and parameter it was found in; an error raised by a task's own
    code does not, and is a task failure (exit code 1).
    """
    return isinstance(exc, DbndError) and exc.exit_code == 2 and exc.parameter is not None
