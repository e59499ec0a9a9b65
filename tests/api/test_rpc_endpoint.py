"""The service's read-only JSON-RPC endpoint: standard tools read the embedded chain, and
anyone's calls are bounded like a public node's (gas cap, time budget, log range and count,
batch and body size), with standard error codes and plain messages."""

from __future__ import annotations

import json
import subprocess

import pytest
from web3 import Web3

from api.devserver import ServiceProcess
from api.settings import Settings
from ledger.chain._paths import NODE_MODULES
from ledger.chain.contract_artifact import load_artifact
from tests.api.conftest import assert_problem, authorized_client, upload

CAST = NODE_MODULES / "@foundry-rs" / "cast-linux-amd64" / "bin" / "cast"


ENDLESS_LOOP = "0x5b600056"  # JUMPDEST; PUSH1 0; JUMP


def rpc(client, method, params=()):
    return client.post(
        "/rpc", json={"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)}
    ).json()


def error(client, method, params=()):
    answer = rpc(client, method, params)
    assert "result" not in answer, answer
    return answer["error"]


@pytest.fixture
def bounded(tmp_path):
    """Small bounds, so that each one is reached by a small request."""
    settings = Settings(
        data_dir=tmp_path / "bounded", anchor_interval=3600, rpc_gas_cap=1_000_000,
        rpc_evm_timeout=60, rpc_max_batch=3, rpc_max_body_bytes=4096, rpc_max_log_blocks=2,
        rpc_max_logs=1,
    )  # fmt: skip
    with authorized_client(settings) as client:
        yield client


@pytest.fixture
def timed(tmp_path):
    """A gas cap no loop reaches, so that only the time budget stops it."""
    settings = Settings(
        data_dir=tmp_path / "timed", anchor_interval=3600, rpc_gas_cap=10**9,
        rpc_evm_timeout=0.3, rpc_request_timeout=0.5,
    )  # fmt: skip
    with authorized_client(settings) as client:
        yield client


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


def test_the_gas_cap_bounds_calls_and_estimates(bounded):
    for gas in (None, hex(30_000_000)):  # no gas, or more than the cap: the cap
        call = {"data": ENDLESS_LOOP, **({"gas": gas} if gas else {})}
        assert error(bounded, "eth_call", [call]) == {"code": -32000, "message": "out of gas"}
    assert error(bounded, "eth_estimateGas", [{"data": ENDLESS_LOOP}]) == {
        "code": -32000,
        "message": "gas required exceeds allowance (1000000)",
    }
    transfer = {"to": "0x" + "12" * 20, "value": "0x1"}
    assert rpc(bounded, "eth_estimateGas", [transfer])["result"] == hex(21_000)


def test_the_time_budget_bounds_a_call_and_a_batch_shares_one_deadline(timed):
    assert error(timed, "eth_call", [{"data": ENDLESS_LOOP}]) == {
        "code": -32000,
        "message": "execution aborted (timeout = 0.3s)",
    }
    loop = {"jsonrpc": "2.0", "method": "eth_call", "params": [{"data": ENDLESS_LOOP}]}
    answers = timed.post("/rpc", json=[{**loop, "id": i} for i in range(4)]).json()
    assert [a["id"] for a in answers] == [0, 1, 2, 3]
    assert {a["error"]["code"] for a in answers} == {-32000}
    assert all(a["error"]["message"].startswith("execution aborted") for a in answers)
    assert rpc(timed, "eth_chainId")["result"]  # and the readers still answer


def test_logs_are_bounded_in_range_and_in_count(bounded):
    upload(bounded)
    upload(bounded, "a,b\n1,2\n")
    head = int(rpc(bounded, "eth_blockNumber")["result"], 16)
    assert error(bounded, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}]) == {
        "code": -32005,
        "message": f"block range too large: {head + 1} blocks, at most 2",
    }
    assert error(bounded, "eth_getLogs", [{"fromBlock": hex(head - 1)}]) == {
        "code": -32005,
        "message": "query returned more than 1 results",
    }
    assert len(rpc(bounded, "eth_getLogs", [{"fromBlock": hex(head)}])["result"]) == 1


def test_batches_are_bounded_and_an_empty_one_is_invalid(bounded):
    call = {"jsonrpc": "2.0", "method": "eth_chainId", "params": []}
    answers = bounded.post("/rpc", json=[{**call, "id": i} for i in range(3)]).json()
    assert [a["id"] for a in answers] == [0, 1, 2]
    too_many = bounded.post("/rpc", json=[{**call, "id": i} for i in range(4)]).json()
    assert too_many == {
        "jsonrpc": "2.0", "id": None,
        "error": {"code": -32600, "message": "batch too large: 4 calls, at most 3"},
    }  # fmt: skip
    assert bounded.post("/rpc", json=[]).json()["error"]["code"] == -32600
    mixed = bounded.post("/rpc", json=[{**call, "id": 1}, 5, {"id": 2, "method": 3}]).json()
    assert "result" in mixed[0] and [m["error"]["code"] for m in mixed[1:]] == [-32600, -32600]


def test_a_request_body_past_its_limit_is_413_before_it_is_parsed(bounded):
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [], "pad": "x" * 5000}
    body = assert_problem(bounded.post("/rpc", json=call), 413, "too-large")
    assert body["limit"] == "rpc_max_body_bytes"


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("eth_getBalance", [], "missing value for required argument 0 (address)"),
        ("eth_getBalance", ["0x12"],
         "invalid argument 0 (address): hex string has length 2, want 40 for an address"),
        ("eth_getBalance", ["0x" + "zz" * 20],
         "invalid argument 0 (address): an address has characters that are not hex digits"),
        ("eth_getBalance", ["0x" + "12" * 20, "yesterday"],
         "invalid argument 1 (block): a block is a tag (latest, earliest, pending, safe, "
         "finalized), a hex number or a block hash"),
        ("eth_getStorageAt", ["0x" + "12" * 20], "missing value for required argument 1 (slot)"),
        ("eth_call", [{"to": 5}], "invalid argument 0 (transaction): an address must be a hex "
         "string, got a number"),
        ("eth_call", [{"data": "0x0"}], "invalid argument 0 (transaction): data must have an "
         "even number of hex digits"),
        ("eth_call", [{"gas": "0x" + "f" * 65}],
         "invalid argument 0 (transaction): a quantity is at most 256 bits"),
        ("eth_call", [{}, "latest", {"0x" + "12" * 20: {}}],
         "invalid argument 2 (state overrides): state overrides are not supported by this node"),
        ("eth_getLogs", [{"fromBlock": "0xzz"}], "invalid argument 0 (filter): a block is a "
         "tag (latest, earliest, pending, safe, finalized), a hex number or a block hash"),
        ("eth_getLogs", [{"topics": [["0x12"]]}],
         "invalid argument 0 (filter): hex string has length 2, want 64 for a 32-byte hash"),
        ("eth_getLogs", [{"toBlock": "latest", "blockHash": "0x" + "ab" * 32}],
         "invalid argument 0 (filter): give blockHash or a block range, not both"),
        ("eth_getTransactionReceipt", [7],
         "invalid argument 0 (transaction hash): a 32-byte hash must be a hex string, "
         "got a number"),
        ("eth_getBlockByNumber", ["latest", "yes"],
         "invalid argument 1 (full transactions): must be true or false, got a string"),
        ("eth_feeHistory", ["0x0", "latest"],
         "invalid argument 0 (block count): from 1 to 1024 blocks"),
        ("eth_blockNumber", [1], "too many arguments, want at most 0"),
    ],
)  # fmt: skip
def test_bad_params_are_invalid_params_in_plain_words(client, method, params, message):
    assert error(client, method, params) == {"code": -32602, "message": message}


def test_params_must_be_positional_and_ids_plain(client):
    answer = client.post(
        "/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": {"a": 1}}
    ).json()
    assert answer["error"] == {
        "code": -32602, "message": "params must be an array of positional arguments"
    }  # fmt: skip
    odd_id = client.post("/rpc", json={"id": {"x": 1}, "method": "eth_chainId"}).json()
    assert odd_id["error"]["code"] == -32600
    assert client.post("/rpc", content=b"\xff\xfe{").json()["error"]["code"] == -32700
