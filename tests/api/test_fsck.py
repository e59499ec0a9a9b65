"""Tamper detection names each altered file, missing file and altered index row; verification
of anything touching a tampered artifact fails its named check."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from tests.api.conftest import train, upload

pytestmark = pytest.mark.usefixtures("isolated_cwd")


def fsck(client):
    response = client.get("/v1/admin/fsck")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_clean_service_has_no_findings(client):
    dataset = upload(client).json()
    train(client, dataset["content_hash"])
    assert fsck(client) == {"ok": True, "findings": []}


def test_an_altered_artifact_is_named_with_both_hashes(client):
    dataset = upload(client).json()
    model = train(client, dataset["content_hash"]).json()
    store = client.app.state.service.core.store
    path = store.path_of(model["model_hash"])
    path.write_bytes(path.read_bytes() + b"\0")
    report = fsck(client)
    assert not report["ok"]
    [finding] = report["findings"]
    assert finding["kind"] == "artifact-altered"
    assert finding["subject"] == str(path)
    assert finding["expected"] == model["model_hash"]
    assert finding["found"] != model["model_hash"]
    verdict = client.get(f"/v1/verify/models/{model['model_hash']}").json()
    artifacts = next(c for c in verdict["checks"] if c["name"] == "artifacts")
    assert artifacts["ok"] is False and verdict["verdict"] == "invalid"


def test_a_deleted_artifact_is_named(client):
    dataset = upload(client).json()
    store = client.app.state.service.core.store
    store.path_of(dataset["content_hash"]).unlink()
    [finding] = fsck(client)["findings"]
    assert finding["kind"] == "artifact-missing"
    assert finding["expected"] == dataset["content_hash"]
    assert "dataset file" in finding["detail"]


def test_an_altered_index_row_is_named_field_by_field(client, settings):
    dataset = upload(client).json()
    with sqlite3.connect(settings.data_dir / "index.sqlite3") as db:
        db.execute(
            "UPDATE datasets SET row_count = '999' WHERE hash = ?", (dataset["content_hash"],)
        )
    [finding] = fsck(client)["findings"]
    assert finding["kind"] == "index-mismatch"
    assert finding["subject"] == f"{dataset['content_hash']}.row_count"
    assert (finding["expected"], finding["found"]) == ("3", "999")


def test_cli_fsck_exits_1_and_names_the_file(client, settings, monkeypatch):
    """`provenance fsck` against the running service (here: the in-process test client)."""
    from contextlib import nullcontext

    from api.cli import _service

    dataset = upload(client).json()
    client.app.state.service.core.store.path_of(dataset["content_hash"]).write_bytes(b"a\n1\n")
    monkeypatch.setattr(_service, "connect", lambda *args: nullcontext(client))
    result = CliRunner().invoke(cli, ["fsck", "--data-dir", str(settings.data_dir)])
    assert result.exit_code == 1
    assert "artifact-altered" in result.output
    assert dataset["content_hash"] in result.output
