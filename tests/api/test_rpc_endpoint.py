"""The service's read-only JSON-RPC endpoint: standard tools read the embedded chain."""

from __future__ import annotations

import json
import subprocess

import pytest
from web3 import Web3

from api.devserver import ServiceProcess
from ledger._paths import NODE_MODULES
from ledger.artifact import load_artifact
from tests.api.conftest import upload

CAST = NODE_MODULES / "@foundry-rs" / "cast-linux-amd64" / "bin" / "cast"


def rpc(client, method, params=()):
    return client.post(
        "/rpc", json={"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)}
    ).json()


@pytest.fixture
def registered(client):
    dataset = upload(client).json()
    chain = client.get("/v1/chain").json()
    return dataset, chain


def test_web3_with_only_the_abi_reads_a_dataset_through_rpc(client, registered):
    dataset, chain = registered
    w3 = Web3(Web3.HTTPProvider("http://testserver/rpc", session=None))
    # Route web3's HTTP requests through the in-process test client.
    w3.provider.make_request = lambda method, params: rpc(client, method, params)
    contract = w3.eth.contract(address=chain["contract_address"], abi=load_artifact().abi)
    kind, revoked, registered_at, registrant = contract.functions.getDataset(
        bytes.fromhex(dataset["content_hash"][2:])
    ).call()
    assert (kind, revoked, registrant) == (1, False, dataset["registrant"])
    assert registered_at == dataset["registered_at"]
    assert w3.eth.chain_id == chain["chain_id"]
    logs = w3.eth.get_logs({"address": chain["contract_address"], "fromBlock": 0})
    assert "0x" + bytes(logs[-1]["topics"][1]).hex() == dataset["content_hash"]


def test_receipts_blocks_and_logs_have_the_standard_shape(client, registered):
    dataset, _ = registered
    receipt = rpc(client, "eth_getTransactionReceipt", [dataset["tx_hash"]])["result"]
    assert receipt["status"] == "0x1"
    assert len(receipt["logsBloom"]) == 2 + 512
    assert all(log["removed"] is False and "type" not in log for log in receipt["logs"])
    block = rpc(client, "eth_getBlockByNumber", [hex(dataset["block_number"]), False])["result"]
    assert block["transactions"] == [dataset["tx_hash"]]
    assert len(block["logsBloom"]) == 2 + 512
    assert rpc(client, "eth_blockNumber")["result"] == hex(dataset["block_number"])


@pytest.mark.parametrize(
    "method", ["eth_sendRawTransaction", "eth_sendTransaction", "eth_sign", "anvil_setBalance"]
)
def test_every_write_method_is_refused(client, registered, method):
    before = rpc(client, "eth_blockNumber")["result"]
    answer = rpc(client, method, ["0x02f8"])
    assert answer["error"]["code"] == -32601
    assert rpc(client, "eth_blockNumber")["result"] == before


def test_a_revert_carries_its_custom_error_data(client, registered):
    _, chain = registered
    selector = Web3.keccak(text="getDataset(bytes32)")[:4].hex()
    answer = rpc(
        client,
        "eth_call",
        [{"to": chain["contract_address"].lower(), "data": "0x" + selector + "11" * 32}],
    )
    assert answer["error"]["code"] == 3
    unknown_record = Web3.keccak(text="UnknownRecord(bytes32,uint8)")[:4].hex()
    assert answer["error"]["data"].startswith("0x" + unknown_record)


def test_batch_requests_and_garbage(client):
    batch = client.post(
        "/rpc",
        json=[
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "net_version", "params": []},
        ],
    ).json()
    assert int(batch[0]["result"], 16) == int(batch[1]["result"])
    assert client.post("/rpc", content=b"{not json").json()["error"]["code"] == -32700
    assert client.post("/rpc", json={"id": 1}).json()["error"]["code"] == -32600


@pytest.mark.skipif(not CAST.exists(), reason="cast not installed: npm ci --prefix contracts")
def test_cast_reads_a_dataset_from_a_real_server(tmp_path):
    """foundry's cast, a tool we did not write, against a service started from the CLI."""
    with ServiceProcess(tmp_path / "data") as server, server.client() as api:
        base_url = server.url
        dataset = api.post("/v1/datasets", files={"file": ("d.csv", "a,b\n1,2\n3,4\n")}).json()
        contract = api.get("/v1/chain").json()["contract_address"]
        out = subprocess.run(
            [str(CAST), "call", "--rpc-url", f"{base_url}/rpc", contract,
             "getDataset(bytes32)((uint8,bool,uint40,address))", dataset["content_hash"]],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        assert out.startswith("(1, false, ")
        assert dataset["registrant"].lower() in out.lower()
        refused = subprocess.run(
            [str(CAST), "publish", "--rpc-url", f"{base_url}/rpc", "0x02f8"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode != 0
        assert "read-only" in refused.stderr
        logs = subprocess.run(
            [str(CAST), "logs", "--json", "--rpc-url", f"{base_url}/rpc", "--address", contract,
             "--from-block", "0"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        assert json.loads(logs)[-1]["transactionHash"] == dataset["tx_hash"]
