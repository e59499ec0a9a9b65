"""Nothing acknowledged is lost across a restart, the index can be dropped and rebuilt with
identical answers, and the service catches up with chain writes it did not index itself."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from tests.api.conftest import SALES_CSV, authorized_client, train, upload

pytestmark = pytest.mark.usefixtures("isolated_cwd")

READS = ("/v1/datasets", "/v1/models", "/v1/chain")


def build_history(client):
    raw = upload(client, SALES_CSV + "300,400,7000\n").json()
    clean = client.post(
        f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": [{"step": "drop_duplicates"}]}
    ).json()
    model = train(client, clean["content_hash"]).json()
    receipts = client.post(
        f"/v1/models/{model['model_hash']}/predict", json={"rows": [{"x1": 1, "x2": 2}] * 3}
    ).json()["receipts"]
    client.post("/v1/anchor")
    client.post(f"/v1/records/{raw['content_hash']}/revoke", json={"reason": "superseded"})
    return raw, clean, model, receipts


def everything(client, raw, clean, model, receipts):
    """Every read an API client could make of what was created."""
    paths = [
        *READS,
        f"/v1/datasets/{raw['content_hash']}",
        f"/v1/datasets/{clean['content_hash']}",
        f"/v1/datasets/{clean['content_hash']}/rows/1/proof",
        f"/v1/models/{model['model_hash']}",
        f"/v1/lineage/{raw['content_hash']}?direction=down",
        *[f"/v1/receipts/{r['receipt_id']}" for r in receipts],
    ]
    answers = {}
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        answers[path] = response.json()
    answers["/v1/chain"].pop("latest_block")
    answers["/v1/chain"].pop("indexed_block")
    return _without_confirmations(answers)


def _without_confirmations(value):
    """``value`` with every record's confirmations left out: they grow with every block."""
    if isinstance(value, dict):
        return {k: _without_confirmations(v) for k, v in value.items() if k != "confirmations"}
    if isinstance(value, list):
        return [_without_confirmations(v) for v in value]
    return value


def test_everything_reads_back_identically_after_a_restart(settings):
    with authorized_client(settings) as client:
        history = build_history(client)
        before = everything(client, *history)
        head = client.get("/v1/chain").json()["latest_block"]
    with authorized_client(settings) as client:
        assert everything(client, *history) == before
        new = upload(client, "p,q\n1,2\n").json()
        assert new["block_number"] > head  # the same chain goes on
        report = client.post(
            "/v1/verify/receipt",
            json={"receipt": client.get(f"/v1/receipts/{history[3][0]['receipt_id']}").json()},
        ).json()
        assert report["verdict"] == "invalid"  # its training data's parent was revoked
        assert [c["name"] for c in report["checks"] if c["ok"] is False] == ["training_data"]


def test_index_rebuilt_from_events_gives_identical_answers(settings):
    with authorized_client(settings) as client:
        history = build_history(client)
        before = everything(client, *history)
    (settings.data_dir / "index.sqlite3").unlink()
    for suffix in ("-wal", "-shm"):
        (settings.data_dir / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    result = CliRunner().invoke(cli, ["index", "rebuild", "--data-dir", str(settings.data_dir)])
    assert result.exit_code == 0, result.output
    with authorized_client(settings) as client:
        assert everything(client, *history) == before


def test_the_index_catches_up_with_writes_it_did_not_make(client):
    """A write straight to the chain (as another service on the same node would make) shows up
    in the API without any request triggering a sync."""
    service = client.app.state.service
    digest = "0x" + "5a" * 32
    service.core.client.register_dataset(digest, rows_root=digest, row_count=1, schema_hash=digest)
    deadline = time.monotonic() + 30
    while client.get(f"/v1/datasets/{digest}").status_code == 404:
        assert time.monotonic() < deadline, "the index never caught up"
        time.sleep(0.2)
    assert client.get(f"/v1/datasets/{digest}").json()["row_count"] == 1
