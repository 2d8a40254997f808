"""The byte-level encoding that the value fingerprints share: tags, lengths, type names."""

from __future__ import annotations

import struct
from typing import Any

U64 = struct.Struct("<Q").pack
CHUNK_BYTES = 1 << 20  # work buffer size: copies never exceed it, and data stays in cache between passes


def feed_text(h: Any, tag: bytes, s: str) -> None:
    """Feed `tag`, the length and the UTF-8 bytes of `s` to hasher `h`."""
    b = s.encode("utf-8", "surrogatepass")
    h.update(tag + U64(len(b)))
    h.update(b)


def type_name(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"
