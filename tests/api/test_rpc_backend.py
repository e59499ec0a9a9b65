"""The service on a real JSON-RPC node (anvil): keystore, deploy, serve, refuse, recover."""

from __future__ import annotations

import threading

import pytest
from eth_utils import keccak
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from api.settings import Settings
from ledger.chain.backends.rpc import RpcBackend
from ledger.chain.client import LedgerClient
from ledger.chain.deployment import Deployment
from ledger.chain.devnode import AnvilNode, anvil_binary
from ledger.chain.keys import create_keystore
from tests.api.conftest import SALES_CSV, assert_problem, authorized_client, train, upload

pytestmark = [
    pytest.mark.usefixtures("isolated_cwd"),
    pytest.mark.anvil,
    pytest.mark.skipif(anvil_binary() is None, reason="anvil not installed"),
]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def node(tmp_path):
    with AnvilNode(tmp_path / "anvil", state=tmp_path / "anvil-state.json") as anvil:
        yield anvil


@pytest.fixture
def rpc_setup(tmp_path, node, monkeypatch):
    """A keystore, a funded key and a deployment made with `provenance deploy`."""
    monkeypatch.setenv("PROVENANCE_KEYSTORE_PASSWORD", PASSWORD)
    keystore = tmp_path / "key.json"
    account = create_keystore(keystore, PASSWORD)
    node.set_balance(account.address, 10**21)
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(
        cli,
        ["deploy", "--rpc-url", node.url, "--keystore", str(keystore), "--data-dir", str(data_dir)],
    )
    assert result.exit_code == 0, result.output
    settings = Settings(
        data_dir=data_dir, chain="rpc", rpc_url=node.url, keystore=keystore,
        anchor_interval=3600,
    )  # fmt: skip
    return settings, account


def test_deploy_writes_a_record_that_matches_the_chain(rpc_setup, node):
    settings, account = rpc_setup
    record = Deployment.load(settings.data_dir / "deployment.json")
    assert record.deployer == account.address
    assert record.chain_id == 31337
    reader = LedgerClient.reader(RpcBackend(node.url), record.address)
    assert reader.version() == "1.2.0"
    assert reader.is_registrar(account.address)


def test_deploy_refuses_to_overwrite_a_record(rpc_setup, node, tmp_path):
    settings, _ = rpc_setup
    result = CliRunner().invoke(
        cli,
        ["deploy", "--rpc-url", node.url, "--keystore", str(settings.keystore),
         "--data-dir", str(settings.data_dir)],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "already records" in result.output


def test_the_whole_flow_on_anvil(rpc_setup):
    settings, account = rpc_setup
    with authorized_client(settings) as client:
        assert client.get("/v1/chain").json()["backend"] == "rpc"
        dataset = upload(client).json()
        model = train(client, dataset["content_hash"]).json()
        receipt = client.post(
            f"/v1/models/{model['model_hash']}/predict", json={"rows": [{"x1": 150, "x2": 250}]}
        ).json()["receipts"][0]
        assert receipt["service"] == account.address
        client.post("/v1/anchor")
        anchored = client.get(f"/v1/receipts/{receipt['receipt_id']}").json()
        report = client.post("/v1/verify/receipt", json={"receipt": anchored}).json()
        assert report["verdict"] == "valid", report


def test_serve_refuses_a_record_whose_address_has_other_code(rpc_setup):
    settings, _ = rpc_setup
    path = settings.data_dir / "deployment.json"
    record = Deployment.load(path)
    Deployment(**{**record.__dict__, "address": "0x" + "11" * 20}).save(path)
    with pytest.raises(Exception, match="artifact"), TestClient(create_app(settings)):
        pass


def test_wrong_keystore_password_is_a_clear_error(rpc_setup, monkeypatch):
    settings, _ = rpc_setup
    monkeypatch.setenv("PROVENANCE_KEYSTORE_PASSWORD", "wrong")
    with pytest.raises(Exception, match="wrong password"), TestClient(create_app(settings)):
        pass


def test_unreachable_node_is_503_and_the_service_recovers(rpc_setup, node, tmp_path):
    settings, _ = rpc_setup
    with authorized_client(settings) as client:
        dataset = upload(client).json()
        node.stop()  # anvil writes its state file on the way out
        assert_problem(client.get("/v1/chain"), 503, "chain-unavailable")
        assert_problem(upload(client, SALES_CSV + "400,500,8000\n"), 503, "chain-unavailable")
        with AnvilNode(tmp_path / "anvil2", port=node.port, state=tmp_path / "anvil-state.json"):
            assert client.get("/v1/chain").status_code == 200
            again = upload(client, SALES_CSV + "400,500,8000\n")
            assert again.status_code == 201, again.text
            assert client.get(f"/v1/datasets/{dataset['content_hash']}").status_code == 200


def test_concurrent_writers_share_one_nonce_sequence(rpc_setup, node):
    settings, account = rpc_setup
    record = Deployment.load(settings.data_dir / "deployment.json")
    client = LedgerClient(RpcBackend(node.url), account, record.address)
    errors: list[Exception] = []

    def register(worker: int) -> None:
        for i in range(10):
            digest = keccak(f"{worker}-{i}".encode())
            try:
                client.register_dataset(digest, rows_root=digest, row_count=1, schema_hash=digest)
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=register, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len([e for e in client.events() if hasattr(e, "content_hash")]) == 40
