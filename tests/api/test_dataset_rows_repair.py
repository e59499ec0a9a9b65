"""The service's row-index repair paths, through HTTP and the service part, and the upload
limit's own error: a dataset's row index is rebuilt from its re-hashed file when it is missing
or damaged, and only a stream past the limit is "too large"."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.storage.artifacts import ArtifactStore, StreamTooLarge
from ledger.storage.row_index import RowIndex, RowIndexCorrupt
from ml.errors import TooLarge
from tests.api.conftest import upload

CSV = "x,y\n" + "".join(f"{i},{i * 3}\n" for i in range(40))


def _service(client: TestClient) -> Any:
    return client.app.state.service  # type: ignore[attr-defined]


def _registered(client: TestClient) -> tuple[str, str, ArtifactStore]:
    response = upload(client, CSV)
    assert response.status_code == 201, response.text
    record = response.json()
    return record["content_hash"], record["rows_root"], _service(client).core.store


def _proofs(client: TestClient, content_hash: str) -> list[dict[str, Any]]:
    answers = [client.get(f"/v1/datasets/{content_hash}/rows/{i}/proof") for i in (0, 17, 39)]
    assert [a.status_code for a in answers] == [200, 200, 200], answers[-1].text
    return [a.json() for a in answers]


def test_a_missing_row_index_is_rebuilt_over_http(client: TestClient) -> None:
    content_hash, _, store = _registered(client)
    before = _proofs(client, content_hash)
    store.rows_path(content_hash).unlink()
    assert _proofs(client, content_hash) == before
    assert store.has_rows(content_hash)


def test_a_corrupt_row_index_is_rebuilt_over_http(client: TestClient) -> None:
    content_hash, _, store = _registered(client)
    before = _proofs(client, content_hash)
    store.rows_path(content_hash).write_bytes(b"not a row index")
    assert _proofs(client, content_hash) == before


def test_the_row_index_lookup_repairs_a_corrupt_index_itself(client: TestClient) -> None:
    """The lookup rebuilds a damaged index rather than raising again (it used to swallow
    RowIndexCorrupt and reopen the same damaged file)."""
    content_hash, rows_root, store = _registered(client)
    path = store.rows_path(content_hash)
    path.write_bytes(b"\0" * 64)
    with pytest.raises(RowIndexCorrupt):  # what the service starts from
        RowIndex(path)
    with _service(client).datasets._row_index(content_hash) as rows:
        assert "0x" + rows.root.hex() == rows_root


def test_only_a_stream_past_the_limit_is_too_large(client: TestClient, tmp_path: Any) -> None:
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(StreamTooLarge) as caught:
        store.stage(io.BytesIO(b"x" * 11), max_bytes=10)
    assert caught.value.max_bytes == 10
    closed = io.BytesIO(CSV.encode())
    closed.close()
    with pytest.raises(ValueError, match="closed file") as raised:
        _service(client).datasets.register(closed)
    assert not isinstance(raised.value, TooLarge)  # a closed stream is not a 413
