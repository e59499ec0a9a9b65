"""Hostile clients (issue 15): no anonymous request can stall the service, and no input gets a
5xx. The four findings of the issue first, each as it was reported, then a sweep of malformed
input over every route, then the chain's own failures (gone, disk full) answered as 503/507."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import pytest

from api.auth import access_rules
from api.settings import Settings
from tests.api.conftest import SALES_CSV, assert_problem, authorized_client, train, upload

ANONYMOUS = {"Authorization": ""}
ENDLESS_LOOP = "0x5b600056"  # JUMPDEST; PUSH1 0; JUMP: the call of finding 1
WAIT = 60  # a guard so that a regression fails instead of hanging


def rpc(client, method, params, headers=ANONYMOUS):
    message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return client.post("/rpc", json=message, headers=headers)


def slow_reads_client(tmp_path, **settings: Any):
    """Reads that run for seconds (a gas cap no loop reaches, a 3 s budget), two readers."""
    return authorized_client(
        Settings(**{
            "data_dir": tmp_path / "data", "anchor_interval": 3600, "rpc_gas_cap": 10**9,
            "rpc_evm_timeout": 3, "rpc_request_timeout": 10, "rpc_readers": 2, **settings,
        })
    )  # fmt: skip


@pytest.fixture
def slow_reads(tmp_path):
    """As if four clients: the test client's requests may all run at once."""
    with slow_reads_client(tmp_path, rpc_client_concurrency=4) as client:
        yield client


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.02)


# -- the four findings -------------------------------------------------------------------------


def test_finding_1_endless_loops_in_flight_do_not_hold_a_write(slow_reads):
    """Four anonymous endless-loop calls used to hold the chain for 10 s each, and a dataset
    registration waited 85 s behind them. Now they run in reader processes, and the write is
    acknowledged while they are still running."""
    readers_of = slow_reads.app.state.service.core.backend
    answers: list[Any] = []

    def hostile(method: str) -> None:
        answers.append(rpc(slow_reads, method, [{"data": ENDLESS_LOOP}]))

    methods = ["eth_call", "eth_estimateGas"] * 2
    threads = [threading.Thread(target=hostile, args=(m,), daemon=True) for m in methods]
    for thread in threads:
        thread.start()
    wait_until(lambda: readers_of.readers is not None and readers_of.readers.busy == 2,
               "two loops running")  # fmt: skip

    written = upload(slow_reads, SALES_CSV + "7,8,9\n")
    still_running = sum(thread.is_alive() for thread in threads)

    assert written.status_code == 201, written.text
    assert still_running >= 2  # acknowledged before the loops ended, not after
    for thread in threads:
        thread.join(WAIT)
    assert len(answers) == 4
    for answer in answers:
        assert answer.status_code == 200
        error = answer.json()["error"]  # never a result, never an HTTP error
        assert error["code"] in (-32000, -32005), error
        assert error["message"].startswith(("execution aborted", "all 2 readers are busy"))


def test_one_clients_slow_calls_take_turns_and_leave_readers_to_others(tmp_path):
    """With one request of a client at a time, an anonymous client's three endless loops hold
    one reader, and a keyed client's read is answered meanwhile; the third loop, which would
    wait two turns, longer than a request may take, is a 429."""
    with slow_reads_client(tmp_path, rpc_request_timeout=1, rpc_evm_timeout=1) as client:
        backend = client.app.state.service.core.backend
        assert rpc(client, "eth_blockNumber", []).status_code == 200  # a reader is started
        answers: list[Any] = []
        loop = [{"data": ENDLESS_LOOP}]
        threads = [
            threading.Thread(target=lambda: answers.append(rpc(client, "eth_call", loop)))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: backend.readers is not None and backend.readers.busy == 1, "running")
        other = rpc(client, "eth_blockNumber", [], headers={})  # the admin key: another client
        running = sum(thread.is_alive() for thread in threads)
        assert int(other.json()["result"], 16) >= 1
        assert running == 3 and backend.readers.busy == 1  # the others wait, not on a reader
        for thread in threads:
            thread.join(WAIT)
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses in ([200, 200, 429], [200, 429, 429])
        for answer in answers:
            if answer.status_code == 429:
                body = assert_problem(answer, 429, "too-many-requests")
                assert body["limit"] == "rpc_client_concurrency"
                assert int(answer.headers["retry-after"]) >= 1


def test_finding_1_the_default_caps_stop_the_reported_call(client):
    """With default settings the reported call ends in about a second (the 5 M gas cap or the
    1 s budget, whichever comes first) instead of ten, and so does the estimate."""
    for method in ("eth_call", "eth_estimateGas"):
        error = rpc(client, method, [{"data": ENDLESS_LOOP}]).json()["error"]
        assert error["code"] == -32000
        assert error["message"] in (
            "out of gas", "gas required exceeds allowance (5000000)",
            "execution aborted (timeout = 1s)",
        )  # fmt: skip


def test_finding_2_an_anonymous_caller_cannot_make_the_service_retrain(client):
    dataset = upload(client).json()["content_hash"]
    model = train(client, dataset).json()["model_hash"]
    response = client.get(f"/v1/verify/models/{model}?retrain=true", headers=ANONYMOUS)
    assert_problem(response, 401, "unauthorized")
    assert client.get(f"/v1/verify/models/{model}", headers=ANONYMOUS).status_code == 200


@pytest.mark.parametrize(
    "address",
    ["0x" + "g" * 40, "0x" + "zz" * 20, "0x" + "1" * 39, "0x" + "1" * 41, "1" * 42, "0x",
     "0x" + "é" * 40, "0X" + "1" * 40 + "%00"],
)  # fmt: skip
def test_finding_3_a_malformed_registrar_address_is_422(client, address):
    response = client.get(f"/v1/admin/registrars/{address}")
    body = assert_problem(response, 422, "invalid-request")
    assert body["errors"][0]["loc"] == ["path", "address"]


def test_finding_4_missing_params_are_named_in_plain_words(client):
    answer = rpc(client, "eth_getBalance", []).json()
    assert answer["error"] == {
        "code": -32602,
        "message": "missing value for required argument 0 (address)",
    }
    for method in ("eth_getCode", "eth_call", "eth_getLogs", "eth_getTransactionReceipt"):
        message = rpc(client, method, []).json()["error"]["message"]
        assert message.startswith("missing value for required argument 0")
        assert "lambda" not in message and "positional" not in message


# -- no input gets a 5xx -----------------------------------------------------------------------

PATH_VALUES = ["0x" + "zz" * 32, "0x" + "ab" * 33, "0x", "..", "%2e%2e%2f", "-1", "é" * 64,
               "x" * 3000, "0x" + "ab" * 32, "00000000", "%00", "null"]  # fmt: skip
BODIES: list[dict[str, Any]] = [
    {},
    {"content": b"{", "headers": {"content-type": "application/json"}},
    {"content": b"null", "headers": {"content-type": "application/json"}},
    {"content": b"[]", "headers": {"content-type": "application/json"}},
    {"content": b'{"x": 1e999, "rows": "no"}', "headers": {"content-type": "application/json"}},
    {"content": b'"\\ud800"', "headers": {"content-type": "application/json"}},
    {"content": b"\x00\xff\xfe", "headers": {"content-type": "application/octet-stream"}},
    {"content": b"--x\r\n\r\n", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    {"files": {"file": ("x.csv", b"\xff\xfe\x00,\n\x00")}},
    {"json": {"steps": [{"step": "filter_rows", "column": "x" * 10_000}], "rows": [[1e308]]}},
]


def _paths(path: str, names: list[str]) -> list[str]:
    if not names:
        return [path]
    return [path.format(**dict.fromkeys(names, value)) for value in PATH_VALUES]


def test_no_path_parameter_or_body_gets_a_5xx(client):
    """Every route, every method, with malformed path parameters and bodies, as an admin (so
    that nothing stops at the door): all are answered, none with a 5xx."""
    seen = 0
    for route, _ in access_rules(client.app.routes):
        dependant = getattr(route.original_route, "dependant", None)
        if dependant is None or route.path == "/v1/admin/fsck":
            continue  # not an API route, or fsck: no input, and the slow one
        names = [param.name for param in dependant.path_params]
        for method in sorted(route.methods or ()):
            for path in _paths(route.path, names):
                for body in BODIES if method in ("POST", "PUT", "PATCH") else [{}]:
                    response = client.request(method, path, **body)
                    seen += 1
                    assert response.status_code < 500, (method, path, body, response.text)
    assert seen > 300
    assert client.get("/healthz").status_code == 200


HOSTILE_RPC: list[Any] = [
    {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": "0x"},
    {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [{"data": "0x" + "ab" * 30_000}]},
    {"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["0x" + "f" * 64]},
    {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
     "params": [{"address": ["0x" + "12" * 20] * 101}]},
    {"jsonrpc": "2.0", "id": 1, "method": "eth_feeHistory", "params": ["0x400", "latest",
                                                                       [99, 1]]},
    {"jsonrpc": "2.0", "id": [1], "method": "eth_chainId"},
    {"jsonrpc": "2.0", "id": 1, "method": "eth_getStorageAt",
     "params": ["0x" + "12" * 20, "0x" + "f" * 64, {"blockHash": "0x" + "00" * 32}]},
    {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionByHash", "params": ["0x" + "00" * 32]},
    {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance",
     "params": ["0x" + "12" * 20, {"blockNumber": "0x" + "f" * 20}]},
    {"jsonrpc": "2.0", "id": 1, "method": "debug_traceCall", "params": []},
    [{"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber"} for i in range(100)],
    "a string", 12, None, [[]], [None],
]  # fmt: skip


@pytest.mark.parametrize("payload", HOSTILE_RPC, ids=range(len(HOSTILE_RPC)))
def test_no_json_rpc_payload_gets_a_5xx_or_a_python_message(client, payload):
    response = client.post("/rpc", json=payload, headers=ANONYMOUS)
    assert response.status_code == 200, response.text
    answers = response.json()
    for answer in answers if isinstance(answers, list) else [answers]:
        if "error" in answer:
            assert answer["error"]["code"] in (-32700, -32600, -32601, -32602, -32000, -32005)
            message = answer["error"]["message"]
            leaks = ("Traceback", "<locals>", "object has no", "NoneType", "required positional")
            assert not any(word in message for word in leaks), message


# -- the chain's own failures ------------------------------------------------------------------


def test_a_chain_that_is_gone_is_503_and_minus_32603(client):
    client.app.state.service.core.backend.close()
    assert_problem(client.get("/v1/chain"), 503, "chain-unavailable")
    assert rpc(client, "eth_blockNumber", []).json()["error"] == {
        "code": -32603,
        "message": "the chain is unavailable; retry later",
    }


def test_a_full_disk_refuses_a_write_and_leaves_nothing_half_written(client):
    """The chain file cannot grow (SQLite's own SQLITE_FULL): a registration is refused with
    507, nothing of it is on chain or in the index, and the same upload succeeds once there is
    room."""
    store = client.app.state.service.core.backend._store
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    for n in range(60):  # the first blocks may fit in the file's free pages
        csv = SALES_CSV + f"{n},{n},{n}\n"
        refused = upload(client, csv)
        if refused.status_code != 201:
            break
    assert_problem(refused, 507, "insufficient-storage")
    digest = "0x" + hashlib.sha256(csv.encode()).hexdigest()
    head = client.get("/v1/chain").json()["latest_block"]
    assert client.get(f"/v1/datasets/{digest}").status_code == 404  # not on chain, not indexed

    store._conn.execute(f"PRAGMA max_page_count = {pages * 100}")
    retried = upload(client, csv)
    assert retried.status_code == 201, retried.text
    assert retried.json()["content_hash"] == digest
    assert retried.json()["block_number"] == head + 1
