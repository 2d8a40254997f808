"""Keeping credentials out of text a user sees: messages, logs, manifests.

`redact` removes secrets from any text; `remember_secret` adds a value (a key read from a Prefect
block, say) to the secrets removed wherever they appear; `one_line` turns an exception raised by a
storage backend into one short, redacted line for an error message.

A leaf module: it imports nothing from the rest of the package, so every layer may use it.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from typing import Any

MASK = "***"

# Environment variables whose values are secrets wherever they show up.
SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CLIENT_SECRET", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_CLIENT_SECRET",
)
# Shorter values ("testing", a test suite's dummy) are too likely to be part of a bucket or path name.
_MIN_SECRET_LENGTH = 8

_known_secrets: frozenset[str] = frozenset()  # replaced, never changed in place: readers need no lock
_lock = threading.Lock()

_SECRET_NAMES = (
    r"aws_secret_access_key|secret_access_key|aws_session_token|session_token|secret|password|passwd|"
    r"account_?key|client_secret|sas_token|private_key|private_key_id|refresh_token|access_token|token|"
    r"credential|sharedaccesssignature|signature|sig|x-amz-signature|x-amz-security-token|x-amz-credential"
)
_PATTERNS = [
    # PEM blocks (GCP service-account keys), also with escaped newlines as in JSON
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), MASK),
    # Authorization headers: Bearer/SharedKey/AWS4-HMAC-SHA256 ...
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n,;}]+"), r"\1" + MASK),
    # name=value / "name": "value" / name: value for secret-looking names (connection strings, URLs, dicts)
    (
        re.compile(rf"(?i)(\b(?:{_SECRET_NAMES})['\"]?\s*[=:]\s*['\"]?)([^'\"\s;&,}}\]]+)"),
        r"\1" + MASK,
    ),
    # passwords in URL user info
    (re.compile(r"(://[^/@:\s]+:)[^/@\s]+@"), r"\1" + MASK + "@"),
    # AWS access key ids
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
    # bare 40-char AWS-style secret keys (mixed case or with / +, so hex digests are left alone)
    (re.compile(r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[a-z/+])[A-Za-z0-9/+]{40}"
                r"(?![A-Za-z0-9/+=])"), MASK),
]
# What a text must contain (lowercased) for each of _PATTERNS to match: most texts (paths, URIs, task names)
# contain none of them and skip the regular expressions.
_LONG_RUN = re.compile(r"[A-Za-z0-9/+]{40}")
_NEEDLES: list[Any] = [
    ("private key",),
    ("authorization",),
    ("secret", "token", "passw", "key", "credential", "sig"),
    ("@",),
    ("akia", "asia"),
    _LONG_RUN,
]
# Azure SDK errors append the raw XML/JSON response body: noise on a user's one line.
_RESPONSE_BODY = re.compile(r"\s*Content:\s*[<{].*$", re.S)


def remember_secret(value: Any) -> None:
    """Redact `value` (a string, or the private key of a service-account dict) wherever it appears from now on."""
    if isinstance(value, dict):
        value = value.get("private_key")
    if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
        global _known_secrets
        with _lock:
            _known_secrets = _known_secrets | {value}


def redact(text: Any) -> str:
    """`text` with credentials removed: secret keys, tokens, passwords, AccountKey=, SAS signatures,
    private keys, and any secret value currently in the environment or remembered with `remember_secret`."""
    text = str(text)
    literals = _literals(_secret_env(), _known_secrets)
    if len(text) > _CACHED_LENGTH:
        return _redacted.__wrapped__(text, literals)
    return _redacted(text, literals)


def _env_reader() -> Any:
    """A function returning the SECRET_ENV values now: a few dict lookups in the process environment's own
    mapping where Python keeps one (`os.environ._data`), since every redaction asks."""
    data, encode = getattr(os.environ, "_data", None), getattr(os.environ, "encodekey", None)
    if not isinstance(data, dict) or encode is None:
        return lambda: tuple(os.environ.get(name, "") for name in SECRET_ENV)
    keys = tuple(encode(name) for name in SECRET_ENV)
    return lambda: tuple(data.get(key, "") for key in keys)


_secret_env = _env_reader()


@functools.lru_cache(maxsize=8)
def _literals(env: tuple[str | bytes, ...], known: frozenset[str]) -> tuple[str, ...]:
    """The secret values to mask, longest first (a secret containing another is masked whole)."""
    values = {os.fsdecode(s) if isinstance(s, bytes) else s for s in (*env, *known) if len(s) >= _MIN_SECRET_LENGTH}
    return tuple(sorted(values, key=len, reverse=True))


# Run records and manifests redact the same URIs and command lines once per task: the text and the
# secrets in effect are the key, so a new secret in the environment is never missed. Long texts
# (tracebacks, response bodies) are not kept.
_CACHED_LENGTH = 2000


@functools.lru_cache(maxsize=2048)
def _redacted(text: str, literals: tuple[str, ...]) -> str:
    for literal in literals:
        text = text.replace(literal, MASK)
    lowered = text.lower()
    for (pattern, replacement), needles in zip(_PATTERNS, _NEEDLES):
        if needles.search(text) if isinstance(needles, re.Pattern) else any(n in lowered for n in needles):
            text = pattern.sub(replacement, text)
    return text


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """An exception's message (or any text) on one line, redacted, at most `limit` characters."""
    text = _RESPONSE_BODY.sub("", str(exc))
    text = redact(" ".join(text.split()))
    return text[:limit] + "..." if len(text) > limit else text


__all__ = ["MASK", "SECRET_ENV", "one_line", "redact", "remember_secret"]
