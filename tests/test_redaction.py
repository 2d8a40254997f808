"""Credentials never reach what a user sees: `redact` on messages that carry every kind of cloud secret."""

from __future__ import annotations

import pytest

from dbnd_prefect.redaction import redact
from tests import servers


def test_redact_removes_every_kind_of_credential() -> None:
    aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    sas = "sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z&sig=AbCdEf0123456789%2BxYz%3D"
    conn = (f"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={servers.AZURITE_KEY};"
            "EndpointSuffix=core.windows.net")
    pem = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n"
    message = (
        f"failed s3://bkt/key.parquet with key AKIAIOSFODNN7EXAMPLE and secret {aws_secret}; "
        f"conn={conn}; url=https://acme.blob.core.windows.net/c/b.csv?{sas}; "
        f'sa={{"private_key": "{pem}", "client_email": "x@y"}}; aws_secret_access_key={aws_secret}; '
        f"etag 9b2cf535f27731c974343645a3985328 sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709; "
        "gcsfs: /tokeninfo?access_token=ya29.RawAccessToken%2Fxyz (Caused by ...); "
        "endpoint http://minio:MinioPassw0rd@127.0.0.1:9000/"
    )
    cleaned = redact(message)
    for secret in (aws_secret, servers.AZURITE_KEY, "AbCdEf0123456789", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
                   "AKIAIOSFODNN7EXAMPLE", "RawAccessToken", "MinioPassw0rd"):
        assert secret not in cleaned
    # what a user needs to find the culprit stays
    for kept in ("s3://bkt/key.parquet", "AccountName=acme", "https://acme.blob.core.windows.net/c/b.csv",
                 "9b2cf535f27731c974343645a3985328", "da39a3ee5e6b4b0d3255bfef95601890afd80709", "x@y",
                 "127.0.0.1:9000"):
        assert kept in cleaned


def test_redact_removes_secret_values_set_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "plain-words-secret")
    assert redact("signature made with plain-words-secret failed") == "signature made with *** failed"


def test_a_secret_that_appears_after_a_text_was_shown_is_removed_from_it_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from dbnd_prefect.redaction import remember_secret

    text = "reading s3://bkt/a.csv with key-material-one and block-key-two-xyz"
    assert redact(text) == text  # nothing secret yet (and the result is remembered for speed)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "key-material-one")
    assert redact(text) == "reading s3://bkt/a.csv with *** and block-key-two-xyz"
    remember_secret("block-key-two-xyz")
    assert redact(text) == "reading s3://bkt/a.csv with *** and ***"
    long_text = text + " " + "x" * 5000  # long texts are not kept, and redacted all the same
    assert redact(long_text).startswith("reading s3://bkt/a.csv with *** and *** x")
