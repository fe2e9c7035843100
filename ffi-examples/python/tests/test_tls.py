"""TLS with a private CA: tls_ca= (a path or PEM bytes) and
tls_client_cert=(cert, key) against two TLS-only redis-servers, one that
asks for no client certificate and one that requires it. The certificates
come from a throwaway CA that openssl makes for the module."""

from __future__ import annotations

import asyncio
import os
import pathlib
from typing import Any, Dict, Iterator, List

import pytest

import distlock
from distlock import aio
from support import RedisServer, TLSFiles, make_pki

pytestmark = pytest.mark.skipif(
    not (distlock._native.HAS_TLS and distlock._native.HAS_INSPECT),
    reason="the loaded libdistlock has no distlock_config_set_tls_* functions",
)

QUICK: Dict[str, Any] = {"connect_timeout": 2, "command_timeout": 2}


class PKI:
    """The fixture: certificate files and the two servers."""

    def __init__(self, directory: pathlib.Path, tls: RedisServer, mtls: RedisServer) -> None:
        self.dir, self.tls, self.mtls = directory, tls, mtls

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def read(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PKI]:
    directory = tmp_path_factory.mktemp("pki")
    make_pki(str(directory))
    files = [str(directory / f) for f in ("server.pem", "server.key", "ca.pem")]
    servers: List[RedisServer] = []
    try:
        for require in (False, True):
            servers.append(RedisServer(tls=TLSFiles(*files, require_client_cert=require)).start())
        yield PKI(directory, *servers)
    finally:
        for s in servers:
            s.stop()


def lock_over(client: distlock.Client, name: str) -> None:
    """Takes a lock through ``client``, sees a second try fail meanwhile,
    gives it back and closes the client: the connection really works."""
    with client:
        with client.lock(name, ttl=5, timeout=2) as lock:
            assert lock.owned()
            assert not client.lock(name).acquire(blocking=False)
            assert client.inspect(name).token == lock.token
        assert not client.inspect(name).held


def key_line(pki: PKI, name: str = "client.key") -> str:
    """A line of base64 from the middle of a private key file."""
    return pki.read(name).decode().splitlines()[1]


def text_of(err: BaseException) -> str:
    """Everything an error shows: its message, repr, args and detail."""
    return " ".join([str(err), repr(err), repr(err.args), str(getattr(err, "detail", ""))])


# -- a private CA ------------------------------------------------------------


@pytest.mark.parametrize("form", ["str", "pathlib.Path", "bytes", "bytearray", "memoryview"])
def test_the_ca_from_a_path_or_bytes(pki: PKI, key: str, form: str) -> None:
    ca: Any = {
        "str": pki.path("ca.pem"),
        "pathlib.Path": pki.dir / "ca.pem",
        "bytes": pki.read("ca.pem"),
        "bytearray": bytearray(pki.read("ca.pem")),
        "memoryview": memoryview(pki.read("ca.pem")),
    }[form]
    client = distlock.Client(pki.tls.url, tls_ca=ca, **QUICK)
    if isinstance(ca, bytearray):
        ca[:] = b"x" * len(ca)  # copied when the client was opened
    lock_over(client, key)


def test_without_the_ca_the_server_is_not_trusted(pki: PKI) -> None:
    with pytest.raises(distlock.ConnectionFailed) as e:
        distlock.Client(pki.tls.url, **QUICK)
    assert "UnknownIssuer" in str(e.value), e.value
    assert "give the CA that signed it" in str(e.value), e.value
    # Another CA does not vouch for the server either.
    with pytest.raises(distlock.ConnectionFailed, match="UnknownIssuer"):
        distlock.Client(pki.tls.url, tls_ca=pki.path("other-ca.pem"), **QUICK)


def test_plain_text_to_a_tls_port_fails(pki: PKI) -> None:
    url = pki.tls.url.replace("rediss://", "redis://")
    with pytest.raises(distlock.ConnectionFailed, match="rediss://"):
        distlock.Client(url, tls_ca=pki.path("ca.pem"), **QUICK)


# -- mutual TLS ---------------------------------------------------------------


def test_mutual_tls_with_a_client_certificate(pki: PKI, key: str) -> None:
    ca = pki.path("ca.pem")
    files = (pki.path("client.pem"), pki.dir / "client.key")
    lock_over(distlock.Client(pki.mtls.url, tls_ca=ca, tls_client_cert=files, **QUICK), key)
    pems = [pki.read("client.pem"), pki.read("client.key")]
    lock_over(distlock.Client(pki.mtls.url, tls_ca=pki.read("ca.pem"), tls_client_cert=pems, **QUICK), key)


def test_mutual_tls_fails_without_a_client_certificate(pki: PKI) -> None:
    with pytest.raises(distlock.ConnectionFailed, match="requires a client certificate"):
        distlock.Client(pki.mtls.url, tls_ca=pki.path("ca.pem"), **QUICK)
    # One that a CA the server does not trust signed.
    stranger = (pki.path("other-client.pem"), pki.path("other-client.key"))
    with pytest.raises(distlock.ConnectionFailed, match="does not trust the client certificate") as e:
        distlock.Client(pki.mtls.url, tls_ca=pki.path("ca.pem"), tls_client_cert=stranger, **QUICK)
    assert key_line(pki, "other-client.key") not in text_of(e.value)


def test_aio_client_takes_the_tls_keywords(pki: PKI, key: str) -> None:
    async def main() -> None:
        async with aio.Client(
            pki.mtls.url,
            tls_ca=pki.read("ca.pem"),
            tls_client_cert=(pki.path("client.pem"), pki.path("client.key")),
            **QUICK,
        ) as client:
            async with client.lock(key, timeout=2) as lock:
                assert (await client.inspect(key)).token == lock.token

    asyncio.run(main())


# -- settings the library refuses, before connecting ---------------------------


def bad_settings(pki: PKI) -> List[Any]:
    missing = pki.path("no-such-dir/ca.pem")
    key = pki.read("client.key")
    cert = pki.read("client.pem")
    return [
        ("missing CA file", {"tls_ca": missing}, ["cannot read the TLS CA file", missing]),
        ("a directory as the CA", {"tls_ca": pki.dir}, [str(pki.dir)]),
        ("a key file as the CA", {"tls_ca": pki.path("client.key")}, ["client.key", "holds no certificate"]),
        ("key bytes as the CA", {"tls_ca": key}, ["the TLS CA PEM holds no certificate"]),
        ("empty CA bytes", {"tls_ca": b""}, ["empty"]),
        ("empty CA path", {"tls_ca": ""}, ["path is empty"]),
        (
            "missing key file",
            {"tls_client_cert": (pki.path("client.pem"), missing)},
            ["cannot read the TLS client key file", missing],
        ),
        (
            "swapped files",
            {"tls_client_cert": (pki.path("client.key"), pki.path("client.pem"))},
            ["client.key", "holds no certificate"],
        ),
        (
            "another certificate's key",
            {"tls_client_cert": (pki.path("client.pem"), pki.path("other-client.key"))},
            ["is not the key of"],
        ),
        ("swapped bytes", {"tls_client_cert": (key, cert)}, ["the TLS client certificate PEM holds no certificate"]),
        ("a certificate as the key", {"tls_client_cert": (cert, cert)}, ["holds no private key"]),
    ]


def test_bad_tls_settings_are_the_librarys_refusal(pki: PKI) -> None:
    """Client and check() refuse each with the library's words (naming the
    file), before connecting; no line of a key ever shows."""
    secret_lines = {key_line(pki), key_line(pki, "other-client.key")}
    for name, kwargs, wanted in bad_settings(pki):
        errors = []
        for attempt in (distlock.check, distlock.Client):
            with pytest.raises(distlock.InvalidArgument) as e:
                attempt(pki.tls.url, **kwargs, **QUICK)
            errors.append(e.value)
        for err in errors:
            shown = text_of(err)
            for w in wanted:
                assert w in shown, f"{name}: {w!r} not in {err}"
            for line in secret_lines:
                assert line not in shown, f"{name}: a key line shows in {err!r}"
            assert err.detail is not None and err.detail in str(err), name
        # Both say it in the same words: the library's.
        assert errors[0].detail == errors[1].detail, name


def test_good_tls_files_pass_the_check_without_connecting(pki: PKI) -> None:
    assert (
        distlock.check(
            "rediss://127.0.0.1:1/0",
            tls_ca=pki.path("ca.pem"),
            tls_client_cert=(pki.path("client.pem"), pki.path("client.key")),
        )
        is None
    )


def test_tls_certificates_do_not_go_with_a_cluster(pki: PKI) -> None:
    with pytest.raises(distlock.InvalidArgument):
        distlock.check(cluster=["rediss://127.0.0.1:1"], tls_ca=pki.path("ca.pem"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tls_ca": 42},
        {"tls_ca": ["ca.pem"]},
        {"tls_client_cert": "client.pem"},
        {"tls_client_cert": b"pem"},
        {"tls_client_cert": ("client.pem",)},
        {"tls_client_cert": ("a", "b", "c")},
        {"tls_client_cert": ("client.pem", b"key bytes")},
        {"tls_client_cert": (b"cert bytes", pathlib.Path("client.key"))},
        {"tls_client_cert": (None, None)},
        {"tls_client_cert": 7},
    ],
)
def test_wrong_types_and_shapes_are_type_errors(pki: PKI, kwargs: Dict[str, Any]) -> None:
    for attempt in (distlock.check, distlock.Client, aio.Client):
        with pytest.raises(TypeError) as e:
            attempt(pki.tls.url, **kwargs)
        assert "key bytes" not in str(e.value) and "cert bytes" not in str(e.value)


def test_a_nul_in_a_path_is_refused(pki: PKI) -> None:
    with pytest.raises(distlock.InvalidArgument, match="NUL"):
        distlock.check(pki.tls.url, tls_ca="ca\0.pem")


def test_a_path_like_object_is_a_path(pki: PKI, key: str) -> None:
    class Where(os.PathLike):
        def __fspath__(self) -> str:
            return pki.path("ca.pem")

    lock_over(distlock.Client(pki.tls.url, tls_ca=Where(), **QUICK), key)
