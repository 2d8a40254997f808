"""What a user sees from an in-process `dbnd` command (dbnd_prefect.pytest_plugin.run_cmd), checked."""

from __future__ import annotations

from dbnd_prefect.pytest_plugin import CmdResult


def ran(result: CmdResult, code: int = 0) -> CmdResult:
    """The command exited with `code` (0: it ran)."""
    assert result.exit_code == code, result.stderr[-3000:]
    return result


def user_error(result: CmdResult, *expected: str) -> str:
    """Exit code 2, one line on stderr naming the problem (each of `expected`), no traceback, nothing printed."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("dbnd: error: "), result
    assert "Traceback" not in result.stderr and result.stdout == ""
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
