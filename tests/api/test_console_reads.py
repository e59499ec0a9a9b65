"""Console pages read records as the API does: with the node away and the index behind, a
dataset or model this process just wrote answers on its page as it does under /v1."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.errors import ChainUnavailable
from tests.api.conftest import train, upload


def test_a_page_answers_where_the_api_answers_with_the_index_behind(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = client.app.state.service.core  # type: ignore[attr-defined]

    def away(*_: Any) -> int:
        raise ChainUnavailable("the node is away")

    monkeypatch.setattr(core, "sync", away)  # the index stops following; writes still land
    monkeypatch.setattr(core.writes, "on_included", None)  # nor is it fed their receipts
    dataset = upload(client)
    assert dataset.status_code == 201, dataset.text
    content_hash = dataset.json()["content_hash"]
    assert core.index.dataset(content_hash) is None  # the index has not seen it

    assert client.get(f"/v1/datasets/{content_hash}").status_code == 200
    page = client.get(f"/datasets/{content_hash}")
    assert page.status_code == 200, page.text
    assert content_hash in page.text

    model = train(client, content_hash)
    assert model.status_code == 201, model.text
    model_hash = model.json()["model_hash"]
    assert client.get(f"/v1/models/{model_hash}").status_code == 200
    page = client.get(f"/models/{model_hash}")
    assert page.status_code == 200, page.text
    assert model_hash in page.text
