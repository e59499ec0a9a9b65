"""The upload route's lean path (``api/routes/_lean_upload.py``, issue 21) answers every body
exactly as FastAPI's own handler does, and takes the bodies clients send every day.

Each body is sent twice to the same service, through the lean path and through FastAPI's
handler alone (``lean_wait`` answering None sends every request there before its body is
read). A refused body changes nothing, so both answers are compared byte for byte. A body that
registers a dataset is sent first through one path (201) and then through the other (200,
already registered) and once more through the first (200): the two 200s are compared byte for
byte, and the 201 carries the same record. The lean path is seen to be taken (or not) by
wrapping :func:`lean_fields`, which still decides.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import FormData, Headers, UploadFile

from api.routes import _lean_upload
from api.routes._lean_upload import lean_fields, lean_wait
from api.settings import MiB, Settings
from ledger.chain.devnode import AnvilNode, anvil_binary
from tests.api.conftest import SALES_CSV, authorized_client
from tests.api.test_crash_recovery import rpc_service_env

BOUNDARY = "lean-test-b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
LIMITS = {"max_upload_bytes": MiB, "max_name_chars": 12, "max_description_chars": 20}


def multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A body with one part per ``(field, filename or None for a text field, content)``."""
    out = b""
    for field, filename, content in parts:
        disposition = f'form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def csv(n: int) -> bytes:
    """A CSV of its own for each ``n``: each registers a new dataset."""
    return (SALES_CSV + f"{n},{n + 1},{n + 2}\n").encode()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", anchor_interval=3600, **LIMITS)
    with authorized_client(settings) as test_client:
        yield test_client


@pytest.fixture
def lean_taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per form the lean path parsed: whether it took it."""
    taken: list[bool] = []

    def watched(form: FormData) -> Any:
        fields = lean_fields(form)
        taken.append(fields is not None)
        return fields

    monkeypatch.setattr(_lean_upload, "lean_fields", watched)
    return taken


class FullPath:
    """While on, the lean path hands every request to FastAPI's handler before reading it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch

    def __enter__(self) -> None:
        self._monkeypatch.setattr(_lean_upload, "lean_wait", lambda values: None)

    def __exit__(self, *exc: object) -> None:
        self._monkeypatch.setattr(_lean_upload, "lean_wait", lean_wait)


def post(client: TestClient, body: bytes | Any, content_type: str, query: str = "") -> Any:
    return client.post(f"/v1/datasets{query}", content=body, headers={"content-type": content_type})


def same(lean: Any, full: Any) -> None:
    assert lean.status_code == full.status_code, (lean.text, full.text)
    assert lean.content == full.content
    for header in ("content-type", "location"):
        assert lean.headers.get(header) == full.headers.get(header)


# Bodies that register nothing: (body, content type, query); all answered with a problem.
REFUSED = [
    (multipart(("name", None, b"only a name")), MULTIPART, ""),  # no file
    (multipart(("file", None, csv(0))), MULTIPART, ""),  # the file as a text field
    (multipart(("file", "a.csv", csv(0))), MULTIPART, "?wait=soon"),
    (multipart(("file", "a.csv", csv(0))), MULTIPART, "?wait="),
    (multipart(("file", "a.csv", csv(0))), MULTIPART, "?wait=final&wait=later"),
    (multipart(("file", "a.csv", csv(0)), ("name", None, b"n" * 13)), MULTIPART, ""),
    (multipart(("file", "a.csv", csv(0)), ("description", None, b"d" * 21)), MULTIPART, ""),
    (multipart(("file", "a.csv", b"")), MULTIPART, ""),  # an empty file
    (multipart(("file", "a.csv", b"a,b\n1,2,3\n")), MULTIPART, ""),  # a ragged CSV
    (multipart(("file", "a.csv", b"a,b\n" + b"1,2\n" * 270_000)), MULTIPART, ""),  # > 1 MiB
    (multipart(("file", "a.csv", csv(0)), ("name", "n.txt", b"a file")), MULTIPART, ""),
    (multipart(("file", "a.csv", csv(0)), ("name", None, b"x" * (MiB + 1))), MULTIPART, ""),
    (multipart(("file", "a.csv", csv(0)))[:-20], MULTIPART, ""),  # cut short
    (b"--" + BOUNDARY.encode() + b"\r\nno headers at all\r\n", MULTIPART, ""),
    (multipart(("file", "a.csv", csv(0))), "multipart/form-data", ""),  # no boundary
    (b"name=x&file=y", "application/x-www-form-urlencoded", ""),
    (b'{"file": "a,b\\n1,2\\n"}', "application/json", ""),
    (b"", MULTIPART, ""),
]


@pytest.mark.parametrize(("body", "content_type", "query"), REFUSED)
def test_a_refused_body_is_answered_as_fastapi_answers_it(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    body: bytes,
    content_type: str,
    query: str,
) -> None:
    stored = sorted(client.app.state.service.core.store.digests())  # type: ignore[attr-defined]
    lean = post(client, body, content_type, query)
    with FullPath(monkeypatch):
        full = post(client, body, content_type, query)
    assert lean.status_code >= 400 and lean.headers["content-type"] == "application/problem+json"
    same(lean, full)
    assert sorted(client.app.state.service.core.store.digests()) == stored  # type: ignore[attr-defined]


def test_a_body_streamed_past_the_upload_limit_is_answered_as_fastapi_answers_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, lean_taken: list[bool]
) -> None:
    def chunks() -> Iterator[bytes]:  # no length declared: BodyGuard counts it as it streams
        yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '.encode()
        yield b'filename="big.csv"\r\n\r\na,b\n'
        for _ in range(2 * MiB // 65536 + 2):
            yield b"1,2\n" * 16384

    lean = post(client, chunks(), MULTIPART)
    with FullPath(monkeypatch):
        full = post(client, chunks(), MULTIPART)
    assert lean.status_code == 413 and json.loads(lean.content)["limit"] == "max_upload_bytes"
    same(lean, full)
    assert lean_taken == []  # the parse itself failed: FastAPI's handler answered it


# Bodies that register a dataset: (parts, query); each gets a CSV of its own.
def _registering(n: int) -> list[tuple[bytes, str, bool]]:
    """(body, query, whether the lean path takes it)."""
    return [
        (multipart(("file", "sales.csv", csv(n))), "", True),
        (
            multipart(
                ("file", "s.csv", csv(n + 1)),
                ("name", None, b"sales"),
                ("description", None, "ventes \u00e9t\u00e9".encode()),
            ),
            "?wait=final",
            True,
        ),
        (
            multipart(("name", None, b"first"), ("file", "s.csv", csv(n + 2))),
            "?wait=included",
            True,
        ),
        (multipart(("file", "s.csv", csv(n + 3))), "?wait=accepted", True),  # final on embedded
        (multipart(("file", "", csv(n + 4))), "", True),  # an empty file name
        (multipart(("file", "s.csv", csv(n + 5)), ("name", None, b"")), "", False),  # "" is None
        (multipart(("file", "s.csv", csv(n + 6)), ("other", None, b"x")), "", False),
        (multipart(("file", "a.csv", csv(n + 7)), ("file", "b.csv", csv(n + 8))), "", False),
        (multipart(("file", "s.csv", csv(n + 9))), "?wait=final&other=1", True),
    ]


@pytest.mark.parametrize("lean_first", [True, False])
def test_a_registering_body_is_answered_as_fastapi_answers_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, lean_taken: list[bool], lean_first: bool
) -> None:
    for body, query, takes_lean in _registering(100 if lean_first else 200):
        del lean_taken[:]
        if lean_first:
            first = post(client, body, MULTIPART, query)
            with FullPath(monkeypatch):
                second = post(client, body, MULTIPART, query)
            again = post(client, body, MULTIPART, query)
        else:
            with FullPath(monkeypatch):
                first = post(client, body, MULTIPART, query)
            second = post(client, body, MULTIPART, query)
            with FullPath(monkeypatch):
                again = post(client, body, MULTIPART, query)
        assert first.status_code == 201, first.text
        assert (second.status_code, again.status_code) == (200, 200)
        same(second, again)  # one path's "already registered" is the other's, byte for byte
        assert first.json() == second.json()  # the record answered on creation is that one
        assert first.headers["content-type"] == second.headers["content-type"]
        assert lean_taken == [takes_lean] * (2 if lean_first else 1), (body, query)


def test_every_dataset_field_comes_through_the_lean_path(
    client: TestClient, lean_taken: list[bool]
) -> None:
    body = multipart(
        ("description", None, b"weekly sales"),
        ("file", "week-1.csv", csv(7)),
        ("name", None, b"week one"),
    )
    answer = post(client, body, MULTIPART)
    assert answer.status_code == 201 and lean_taken == [True]
    record = client.get(f"/v1/datasets/{answer.json()['content_hash']}").json()
    assert (record["name"], record["description"]) == ("week one", "weekly sales")
    assert record["row_count"] == 4


def _form(*items: tuple[str, Any]) -> FormData:
    return FormData(list(items))


def _file(name: str = "a.csv") -> UploadFile:
    import io

    return UploadFile(io.BytesIO(b"a\n1\n"), filename=name, headers=Headers({}))


def test_lean_fields_takes_only_what_fastapi_passes_unchanged() -> None:
    upload = _file()
    assert lean_fields(_form(("file", upload))) == (upload, None, None)
    assert lean_fields(_form(("name", "n"), ("file", upload), ("description", "d"))) == (
        upload,
        "n",
        "d",
    )
    for refused in [
        _form(),
        _form(("name", "n")),
        _form(("file", "text, not a file")),
        _form(("file", upload), ("file", _file("b.csv"))),
        _form(("file", upload), ("name", "")),
        _form(("file", upload), ("name", _file("n.csv"))),
        _form(("file", upload), ("name", "a"), ("name", "b")),
        _form(("file", upload), ("extra", "x")),
    ]:
        assert lean_fields(refused) is None


def test_lean_wait_takes_only_a_valid_single_value() -> None:
    assert lean_wait([]) == "final"
    assert [lean_wait([w]) for w in ("accepted", "included", "final")] == [
        "accepted",
        "included",
        "final",
    ]
    for refused in (["soon"], [""], ["final", "final"], ["Final"]):
        assert lean_wait(refused) is None


@pytest.mark.anvil
@pytest.mark.skipif(anvil_binary() is None, reason="anvil not installed")
def test_an_upload_answered_on_acceptance_is_answered_as_fastapi_answers_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lean_taken: list[bool]
) -> None:
    with AnvilNode(tmp_path / "anvil") as node:
        env = rpc_service_env(node, tmp_path)
        monkeypatch.setenv("PROVENANCE_KEYSTORE_PASSWORD", env["keystore_password"])
        settings = Settings(
            data_dir=tmp_path / "data",
            chain="rpc",
            rpc_url=node.url,
            keystore=Path(env["keystore"]),
            anchor_interval=3600,
        )
        with authorized_client(settings) as client:
            bodies = [multipart(("file", "a.csv", csv(n)), ("name", None, b"a")) for n in (1, 2)]
            lean = post(client, bodies[0], MULTIPART, "?wait=accepted")
            with FullPath(monkeypatch):
                full = post(client, bodies[1], MULTIPART, "?wait=accepted")
            assert (lean.status_code, full.status_code) == (202, 202) and lean_taken == [True]
            ours, theirs = lean.json()["content_hash"], full.json()["content_hash"]
            assert ours != theirs  # two datasets: the answers differ by their hashes only
            assert lean.content == full.content.replace(theirs.encode(), ours.encode())
            assert lean.headers["location"] == full.headers["location"].replace(theirs, ours)
            assert lean.headers["content-type"] == full.headers["content-type"]
            for digest in (ours, theirs):  # both end on chain
                deadline = time.monotonic() + 60
                while client.get(f"/v1/datasets/{digest}").status_code != 200:
                    assert time.monotonic() < deadline, f"{digest} never reached the chain"
                    time.sleep(0.2)
            for body in bodies:  # registered now: "already registered" by either path alike
                again = post(client, body, MULTIPART, "?wait=accepted")
                with FullPath(monkeypatch):
                    same(again, post(client, body, MULTIPART, "?wait=accepted"))
                assert again.status_code == 200
