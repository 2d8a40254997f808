"""Fixtures of the reliability tests: a zygote server per module (see zygote.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.zygote import Zygote, zygote


@pytest.fixture(scope="module")
def forks() -> Iterator[Zygote]:
    with zygote() as server:
        yield server
