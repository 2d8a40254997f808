"""One family of user-facing errors.

Every error a user can fix by changing input, configuration or code is a `DbndError`:
its message names the culprit (task, parameter, URI, key) and says what to do. The CLI
prints `str(error)` on one line and exits with `exit_code`; nothing else is caught there.
"""

from __future__ import annotations


class DbndError(Exception):
    """Base of all errors a user can act on."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


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


class OutputError(DbndError):
    """A task's return value that does not match its declared outputs."""


class TaskFailedError(DbndError):
    """A task body raised; the run failed."""

    exit_code = 1
