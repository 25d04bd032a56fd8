"""Object-storage URLs: what Triton reads is what tritonkit accepts, and a bad one is refused in one line."""

from __future__ import annotations

import pytest

from contract.errors import UsageError
from toolkit.repository.remote import is_remote, parse_remote


@pytest.mark.parametrize(("url", "triton", "endpoint", "key"), [
    ("s3://127.0.0.1:9000/models/repo", "s3://127.0.0.1:9000/models/repo", "http://127.0.0.1:9000", "repo/m/1"),
    ("s3://https://s3.example.com:443/b-1/x/y/", "s3://https://s3.example.com:443/b-1/x/y",
     "https://s3.example.com:443", "x/y/m/1"),
    ("s3://bucket", "s3://bucket", None, "m/1"),
    ("gs://bkt.name/a", "gs://bkt.name/a", None, "a/m/1"),
    ("as://acct1/cont/p", "as://acct1/cont/p", None, "p/m/1"),
])
def test_parse_remote_gives_triton_spelling_and_keys_when_url_is_valid(url: str, triton: str, endpoint: str | None,
                                                                       key: str) -> None:
    parsed = parse_remote(url)
    assert is_remote(url)
    assert parsed.triton_url() == triton
    assert parsed.endpoint_url == endpoint
    assert parsed.key("m", "1") == key
    assert parse_remote(parsed.triton_url()) == parsed  # the Triton spelling reads back the same


@pytest.mark.parametrize(("url", "says"), [
    ("s3://Bad/x", "bucket name 'Bad'"),
    ("s3://http://h/b", "needs a port"),
    ("s3://a:99999/b", "port 99999"),
    ("s3://key:secret@h:1/b", "credentials never go in a URL"),
    ("as://x/y", "as://account/container/path"),
    ("s3://", "names no bucket"),
    ("gs://b0b/../x", "'..'"),
    ("s3://bucket/a b", "spaces"),
    ("model_repository", "not an object-storage URL"),
])
def test_parse_remote_refuses_in_one_line_when_url_is_malformed(url: str, says: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_remote(url)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_is_remote_is_false_for_local_paths_and_other_schemes() -> None:
    assert not any(is_remote(p) for p in ("model_repository", "/tmp/s3:/x", "http://h:1/b", "s3:/b", None))
