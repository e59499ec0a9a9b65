"""``POST /v1/datasets/batch`` on the embedded chain and on anvil with ``--block-time 1``, and
``provenance dataset register`` with several files or a directory.

One request registers its new files in one transaction and answers every file on its own, in
the order sent: 201 with the record's usual view, 200 for bytes registered before (nothing
sent for them), or a problem of its own (malformed, too large) that stores and sends nothing
and never fails the other files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from api.settings import Settings
from ledger.chain.backends.rpc import RpcBackend
from ledger.chain.deployment import deploy_ledger
from ledger.chain.devnode import AnvilNode
from ledger.chain.keys import create_keystore
from tests.api.conftest import SALES_CSV, assert_problem, authorized_client, upload

pytestmark = pytest.mark.usefixtures("isolated_cwd")

MAX_UPLOAD = 4_000  # bytes: small enough that one test file can be over it
PASSWORD = "batch test password"
runner = CliRunner(
    env={"PROVENANCE_URL": None, "PROVENANCE_API_KEY": None, "PROVENANCE_DATA_DIR": None}
)


def csv(n: int) -> str:
    return f"id,value\n{n},{n * 7}\n{n + 1},{n * 11}\n"


@pytest.fixture(params=["embedded", pytest.param("anvil-1s", marks=pytest.mark.anvil)])
def service(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, Settings]]:
    """A service with small uploads, on the embedded chain or on a node mining every second."""
    fields: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "anchor_interval": 3600,
        "max_upload_bytes": MAX_UPLOAD,
    }
    if request.param == "anvil-1s":
        node: AnvilNode = request.getfixturevalue("anvil_paced_node")
        keystore = tmp_path / "key.json"
        account = create_keystore(keystore, PASSWORD)
        node.set_balance(account.address, 10**21)
        fields["data_dir"].mkdir(parents=True)
        deploy_ledger(RpcBackend(node.url), account, fields["data_dir"] / "deployment.json")
        monkeypatch.setenv("PROVENANCE_KEYSTORE_PASSWORD", PASSWORD)
        fields.update(chain="rpc", rpc_url=node.url, keystore=keystore)
    settings = Settings(**fields)
    with authorized_client(settings) as client:
        yield client, settings


def nonce(client: TestClient) -> int:
    """Transactions the service key has sent: a registration that sends nothing leaves it."""
    core = client.app.state.service.core  # type: ignore[attr-defined]
    return core.client.transactor.confirmed_nonce()


def batch(client: TestClient, files: list[tuple[str, str | bytes]]) -> Any:
    return client.post("/v1/datasets/batch", files=[("file", f) for f in files])


def test_a_batch_registers_new_files_in_one_transaction_and_answers_each_file_alone(
    service: tuple[TestClient, Settings],
) -> None:
    client, settings = service
    known = upload(client, SALES_CSV).json()
    before = nonce(client)
    files = [
        ("new-1.csv", csv(1)),
        ("new-2.csv", csv(2)),
        ("sales.csv", SALES_CSV),  # registered before
        ("ragged.csv", "a,b\n1,2\n3\n"),  # malformed
        ("huge.csv", "a,b\n" + "1,2\n" * (MAX_UPLOAD // 4)),  # over max_upload_bytes
        ("copy-of-new-1.csv", csv(1)),  # the same bytes twice in one batch
    ]
    response = batch(client, files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(files) == len(body["data"])
    new_1, new_2, again, ragged, huge, copy = body["data"]
    assert [e["file"] for e in body["data"]] == [name for name, _ in files]
    assert [e["status"] for e in body["data"]] == [201, 201, 200, 422, 413, 200]

    # the new ones: their usual view, on chain, in one transaction
    for entry, (_, text) in zip((new_1, new_2), files, strict=False):
        assert entry["content_hash"] == "0x" + hashlib.sha256(text.encode()).hexdigest()
        assert entry["name"] == entry["file"]
        view = client.get(f"/v1/datasets/{entry['content_hash']}").json()
        assert {k: entry[k] for k in view} == view  # the batch answer is the record's view
        assert entry["registered_at"] > 0 and entry["revoked"] is False
    assert new_1["tx_hash"] == new_2["tx_hash"]
    assert nonce(client) == before + 1
    # registered before, or a moment ago in the same request: answered as such
    assert {k: again[k] for k in known} == known
    assert copy["content_hash"] == new_1["content_hash"]
    assert copy["tx_hash"] == new_1["tx_hash"] and copy["name"] == "new-1.csv"
    # refused: a problem each, nothing stored
    assert ragged["type"].endswith(":ragged-row") and ragged["title"] == "Unprocessable Entity"
    assert ragged["detail"] and "content_hash" not in ragged
    assert huge["type"].endswith(":too-large") and huge["limit"] == "max_upload_bytes"
    store = settings.data_dir / "artifacts"
    for _, text in files[3:5]:
        digest = hashlib.sha256(text.encode()).hexdigest()
        assert not any(digest in p.name for p in store.rglob("*"))
    assert client.get("/v1/datasets").json()["count"] == 3

    # the same batch again sends nothing and answers every file as before
    repeat = batch(client, files).json()["data"]
    assert [e["status"] for e in repeat] == [200, 200, 200, 422, 413, 200]
    assert nonce(client) == before + 1


def test_a_batch_over_max_batch_files_is_refused_whole(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", anchor_interval=3600, max_batch_files=2)
    with authorized_client(settings) as client:
        response = batch(client, [(f"{n}.csv", csv(n)) for n in range(3)])
        body = assert_problem(response, 413, "too-large")
        assert body["limit"] == "max_batch_files"
        assert client.get("/v1/datasets").json()["count"] == 0


def test_the_batch_endpoint_needs_a_registrar_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", anchor_interval=3600)
    with authorized_client(settings) as client:
        client.headers.pop("Authorization")
        assert_problem(batch(client, [("a.csv", csv(1))]), 401, "unauthorized")


def test_the_cli_registers_a_directory_and_several_files(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for n in range(4):
        (folder / f"part-{n}.csv").write_text(csv(n))
    (folder / ".hidden.csv").write_text(csv(99))
    (folder / "broken.csv").write_text("a,b\n1\n")
    data = ("--data-dir", str(tmp_path / "data"))

    result = runner.invoke(cli, ["dataset", "register", str(folder), *data, "--batch-size", "2"])
    assert result.exit_code == 1, result.output  # one file was refused
    lines = result.stdout.splitlines()
    assert len(lines) == 6  # five files, then the summary
    assert lines[-1] == "4 registered, 0 already registered, 1 refused"
    assert lines[0].startswith("refused") and lines[0].endswith("broken.csv")
    assert "1 of 5 file(s) were refused" in result.stderr
    assert not any("hidden" in line for line in lines)

    result = runner.invoke(
        cli,
        ["dataset", "register", str(folder / "part-0.csv"), str(folder / "part-1.csv"), *data,
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["count"] == 2
    assert [e["status"] for e in answer["data"]] == [200, 200]

    result = runner.invoke(cli, ["dataset", "register", str(folder), "--name", "x", *data])
    assert result.exit_code == 1
    assert "one file" in result.stderr
