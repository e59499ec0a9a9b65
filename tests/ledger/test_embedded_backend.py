"""The embedded chain: in-memory and persistent, restarts, SIGKILL crashes, threads.

The contract under test is hand-assembled EVM (no compiler, no dependency on the real ledger
contract): 64 bytes of calldata ``key ‖ value`` store ``value`` at slot ``key`` and emit
``Recorded(bytes32 indexed key, bytes32 value)``; 32 bytes of calldata ``key`` return the
slot; 4 bytes revert with those 4 bytes as a custom error. That is enough to exercise code,
storage, receipts, logs, topics and reverts.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError

from ledger.chain.backends._chaindb import _CACHE_ENTRIES, SqliteKeyValueStore
from ledger.chain.backends.embedded import (
    CHAIN_FILE,
    ChainClosedError,
    ChainFormatError,
    ChainInUseError,
    ChainStoreError,
    EmbeddedBackend,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDED_TOPIC = keccak(text="Recorded(bytes32,bytes32)")
WRITER_KEY = b"\x42" * 32
WRITE_GAS = 100_000
MAX_FEE = 10**10
PRIORITY_FEE = 10**9


# -- a tiny contract, assembled by hand ------------------------------------------------------


def _runtime_code() -> bytes:
    code = bytearray()
    code += bytes([0x36, 0x60, 0x04, 0x14, 0x60, 0x00, 0x57])  # CALLDATASIZE==4 → JUMPI fail
    fail_target = len(code) - 2
    code += bytes([0x36, 0x60, 0x20, 0x14, 0x60, 0x00, 0x57])  # CALLDATASIZE==32 → JUMPI read
    read_target = len(code) - 2
    code += bytes([0x60, 0x20, 0x35, 0x60, 0x00, 0x35, 0x55])  # SSTORE(key, value)
    code += bytes([0x60, 0x20, 0x35, 0x60, 0x00, 0x52])  # MSTORE(0, value)
    code += bytes([0x60, 0x00, 0x35, 0x7F]) + RECORDED_TOPIC  # topic1=key, topic0
    code += bytes([0x60, 0x20, 0x60, 0x00, 0xA2, 0x00])  # LOG2(0, 32, …); STOP
    code[read_target] = len(code)
    code += bytes([0x5B, 0x60, 0x00, 0x35, 0x54, 0x60, 0x00, 0x52])  # read: MSTORE(0, SLOAD(key))
    code += bytes([0x60, 0x20, 0x60, 0x00, 0xF3])  # RETURN(0, 32)
    code[fail_target] = len(code)
    code += bytes([0x5B, 0x60, 0x04, 0x60, 0x00, 0x60, 0x00, 0x37])  # fail: copy the selector
    code += bytes([0x60, 0x04, 0x60, 0x00, 0xFD])  # REVERT(0, 4): a custom error, no args
    return bytes(code)


RUNTIME = _runtime_code()
INITCODE = bytes(
    [0x60, len(RUNTIME), 0x60, 12, 0x60, 0x00, 0x39, 0x60, len(RUNTIME), 0x60, 0x00, 0xF3]
)
INITCODE += RUNTIME


def word(n: int) -> bytes:
    return n.to_bytes(32, "big")


class Writer:
    """Signs raw transactions with its own key and tracks its nonce, like the ledger client."""

    def __init__(self, backend: EmbeddedBackend, key: bytes = WRITER_KEY) -> None:
        self.w3 = backend.w3
        self.account: LocalAccount = Account.from_key(key)
        self.chain_id = self.w3.eth.chain_id
        self.nonce = self.w3.eth.get_transaction_count(self.account.address)

    def send(self, **fields: Any) -> dict[str, Any]:
        tx = {
            "chainId": self.chain_id,
            "nonce": self.nonce,
            "maxFeePerGas": MAX_FEE,
            "maxPriorityFeePerGas": PRIORITY_FEE,
            "value": 0,
            **fields,
        }
        raw = self.account.sign_transaction(tx).raw_transaction
        tx_hash = self.w3.eth.send_raw_transaction(raw)
        self.nonce += 1
        return dict(self.w3.eth.get_transaction_receipt(tx_hash))

    def deploy(self) -> str:
        receipt = self.send(data=INITCODE, gas=200_000)
        assert receipt["status"] == 1
        return receipt["contractAddress"]

    def record(self, contract: str, key: int, value: int) -> dict[str, Any]:
        receipt = self.send(to=contract, data=word(key) + word(value), gas=WRITE_GAS)
        assert receipt["status"] == 1
        return receipt


def read_slot(w3: Web3, contract: str, key: int) -> int:
    return int.from_bytes(w3.eth.call({"to": contract, "data": word(key)}), "big")


def funded_writer(backend: EmbeddedBackend, key: bytes = WRITER_KEY) -> Writer:
    backend.fund(Account.from_key(key).address, 10**21)
    return Writer(backend, key)


def snapshot(w3: Web3, contract: str, keys: list[int], tx_hashes: list[HexBytes]) -> dict[str, Any]:
    """Everything a restart must preserve, as plain comparable data."""
    head = w3.eth.block_number
    return {
        "head": head,
        "blocks": [dict(w3.eth.get_block(n)) for n in range(head + 1)],
        "receipts": [dict(w3.eth.get_transaction_receipt(h)) for h in tx_hashes],
        "transactions": [dict(w3.eth.get_transaction(h)) for h in tx_hashes],
        "logs": w3.eth.get_logs(
            {"fromBlock": 0, "toBlock": head, "address": contract, "topics": [RECORDED_TOPIC]}
        ),
        "one_key_logs": w3.eth.get_logs(
            {"fromBlock": 0, "toBlock": "latest", "topics": [None, word(keys[3])]}
        ),
        "code": w3.eth.get_code(contract),
        "storage": [w3.eth.get_storage_at(contract, k) for k in keys],
    }


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "persistent"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmbeddedBackend]:
    data_dir = None if request.param == "memory" else tmp_path / "chain"
    with EmbeddedBackend(data_dir) as chain:
        yield chain


# -- both modes ------------------------------------------------------------------------------


def test_kind_and_faucet(backend: EmbeddedBackend) -> None:
    assert backend.kind == "embedded"
    address = Account.from_key(WRITER_KEY).address
    backend.fund(address, 12345)
    backend.fund(address, 1)
    assert backend.w3.eth.get_balance(address) == 12346


def test_deploy_record_read_and_logs(backend: EmbeddedBackend) -> None:
    writer = funded_writer(backend)
    w3 = backend.w3
    contract = writer.deploy()
    assert w3.eth.get_code(contract) == RUNTIME
    receipts = [writer.record(contract, key, key * 7) for key in range(1, 6)]
    assert [read_slot(w3, contract, key) for key in range(1, 6)] == [7, 14, 21, 28, 35]
    assert w3.eth.get_storage_at(contract, 4) == word(28)

    log = receipts[2]["logs"][0]
    assert log["address"] == contract
    assert log["topics"] == [HexBytes(RECORDED_TOPIC), HexBytes(word(3))]
    assert log["data"] == HexBytes(word(21))

    logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": contract})
    assert [entry["transactionHash"] for entry in logs] == [r["transactionHash"] for r in receipts]
    only_three = w3.eth.get_logs({"fromBlock": 0, "topics": [RECORDED_TOPIC, word(3)]})
    assert [entry["transactionHash"] for entry in only_three] == [receipts[2]["transactionHash"]]
    ranged = w3.eth.get_logs(
        {"fromBlock": receipts[1]["blockNumber"], "toBlock": receipts[3]["blockNumber"]}
    )
    assert len(ranged) == 3


def test_concurrent_writers_and_readers(backend: EmbeddedBackend) -> None:
    keys = [bytes([i]) * 32 for i in range(1, 5)]
    writers = [funded_writer(backend, key) for key in keys]
    contract = writers[0].deploy()
    start_block = backend.w3.eth.block_number
    per_writer = 10
    errors: list[BaseException] = []
    done = threading.Event()

    def write(index: int, writer: Writer) -> None:
        try:
            for i in range(per_writer):
                writer.record(contract, index * 1000 + i, i + 1)
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            while not done.is_set():
                head = backend.w3.eth.block_number
                backend.w3.eth.get_block(head)
                backend.w3.eth.get_logs({"fromBlock": max(0, head - 3), "address": contract})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i, w)) for i, w in enumerate(writers)]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads + readers:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    assert errors == []
    w3 = backend.w3
    assert w3.eth.block_number == start_block + len(keys) * per_writer
    logs = w3.eth.get_logs({"fromBlock": start_block + 1, "address": contract})
    assert len(logs) == len(keys) * per_writer
    for index in range(len(keys)):
        assert read_slot(w3, contract, index * 1000 + per_writer - 1) == per_writer


def test_get_logs_matches_eth_tester_reference(backend: EmbeddedBackend) -> None:
    # The backend serves eth_getLogs from block receipts with a bloom pre-check; it must give
    # exactly what eth-tester's own (slow, filter-object based) get_logs gives.
    writer = funded_writer(backend)
    first, second = writer.deploy(), writer.deploy()
    for key in range(6):
        writer.record(first if key % 2 else second, key, key + 100)
        backend.fund(Account.from_key(b"\x07" * 32).address, 1)  # blocks without logs
    topic = "0x" + RECORDED_TOPIC.hex()
    key_topic = ["0x" + word(k).hex() for k in range(8)]
    head = backend.w3.eth.block_number
    filters: list[dict[str, Any]] = [
        {},
        {"from_block": 0, "to_block": "latest"},
        {"from_block": "earliest", "to_block": head, "address": first},
        {"from_block": 0, "address": [first, second]},
        {"from_block": 0, "address": "0x" + "ab" * 20},
        {"from_block": 0, "topics": [topic]},
        {"from_block": 0, "topics": [None, key_topic[3]]},
        {"from_block": 0, "topics": [topic, [key_topic[1], key_topic[4]]]},
        {"from_block": 0, "topics": [topic, key_topic[7]]},
        {"from_block": 0, "address": second, "topics": [[topic], [key_topic[2], key_topic[3]]]},
        {"from_block": head - 4, "to_block": head - 1, "topics": [topic]},
        {"from_block": 5, "to_block": 4},
    ]
    tester = backend.ethereum_tester
    with backend.lock:
        for params in filters:
            expected = EthereumTester.get_logs(tester, **params)
            assert tester.get_logs(**params) == expected, params
    assert len(EthereumTester.get_logs(tester, from_block=0)) == 6


def test_reverts_surface_like_a_json_rpc_node(backend: EmbeddedBackend) -> None:
    # eth-tester raises its own TransactionFailed with the revert data flattened to a string;
    # anvil and geth answer "execution reverted" with the data, and web3 raises
    # ContractLogicError(data=...). The embedded chain must do the same.
    writer = funded_writer(backend)
    contract = writer.deploy()
    selector = keccak(text="Nope()")[:4]
    call = {"to": contract, "data": selector, "from": writer.account.address}
    with pytest.raises(ContractLogicError) as caught:
        backend.w3.eth.call(call)
    assert caught.value.data == "0x" + selector.hex()
    with pytest.raises(ContractLogicError) as estimated:  # exactly what anvil gives
        backend.w3.eth.estimate_gas(call)
    assert estimated.value.data == "0x" + selector.hex()
    # Sent anyway, the transaction is mined and fails, as on any node.
    receipt = writer.send(to=contract, data=selector, gas=WRITE_GAS)
    assert receipt["status"] == 0
    assert read_slot(backend.w3, contract, 0) == 0


def test_closed_backend_refuses_requests(backend: EmbeddedBackend) -> None:
    backend.close()
    backend.close()  # idempotent
    with pytest.raises(ChainClosedError):
        backend.w3.eth.block_number  # noqa: B018


# -- persistence -----------------------------------------------------------------------------


def test_restart_reads_back_identically_and_continues(tmp_path: Path) -> None:
    keys = list(range(10, 30))
    with EmbeddedBackend(tmp_path) as chain:
        writer = funded_writer(chain)
        contract = writer.deploy()
        tx_hashes = [writer.record(contract, k, k * 3)["transactionHash"] for k in keys]
        before = snapshot(chain.w3, contract, keys, tx_hashes)
        nonce_before = writer.nonce
    assert len(before["logs"]) == len(keys)
    assert len(before["one_key_logs"]) == 1

    with EmbeddedBackend(tmp_path) as chain:
        after = snapshot(chain.w3, contract, keys, tx_hashes)
        assert after == before
        writer = Writer(chain)
        assert writer.nonce == nonce_before
        receipt = writer.record(contract, 999, 1)
        head = chain.w3.eth.get_block(receipt["blockNumber"])
        assert head["number"] == before["head"] + 1
        assert head["parentHash"] == before["blocks"][-1]["hash"]
        assert before["blocks"][-1]["timestamp"] <= head["timestamp"] <= time.time()
        assert read_slot(chain.w3, contract, 999) == 1
        assert read_slot(chain.w3, contract, keys[0]) == keys[0] * 3

    # A third open sees the write made after the first restart.
    with EmbeddedBackend(tmp_path) as chain:
        assert chain.w3.eth.block_number == before["head"] + 1
        assert chain.w3.eth.get_transaction_receipt(receipt["transactionHash"])["status"] == 1


def test_reads_commit_nothing_and_writes_commit_before_returning(tmp_path: Path) -> None:
    with EmbeddedBackend(tmp_path) as chain:
        writer = funded_writer(chain)
        contract = writer.deploy()
        receipt = writer.record(contract, 1, 2)
        # A second connection sees only what has been committed to the file.
        observer = sqlite3.connect(tmp_path / CHAIN_FILE)
        version = observer.execute("PRAGMA data_version").fetchone()[0]
        w3 = chain.w3
        w3.eth.get_block("latest", full_transactions=True)
        w3.eth.get_transaction_receipt(receipt["transactionHash"])
        w3.eth.get_logs({"fromBlock": 0, "address": contract})
        read_slot(w3, contract, 1)
        w3.eth.estimate_gas(
            {"to": contract, "data": word(5) + word(6), "from": writer.account.address}
        )
        w3.eth.get_balance(writer.account.address)
        assert observer.execute("PRAGMA data_version").fetchone()[0] == version

        receipt = writer.record(contract, 3, 4)
        assert observer.execute("PRAGMA data_version").fetchone()[0] != version
        # The header of an acknowledged write's block (py-evm keys headers by their hash) is
        # already in the file, seen from outside.
        row = observer.execute(
            "SELECT 1 FROM kv WHERE key = ?", (bytes(receipt["blockHash"]),)
        ).fetchone()
        observer.close()
        assert row is not None


def test_a_failed_commit_stops_the_chain_until_reopened(tmp_path: Path) -> None:
    with EmbeddedBackend(tmp_path) as chain:
        writer = funded_writer(chain)
        contract = writer.deploy()
        head = chain.w3.eth.block_number
        store = chain._store
        assert store is not None

        def disk_full(meta: object = None) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        store.commit = disk_full  # type: ignore[method-assign]
        with pytest.raises(ChainStoreError):
            writer.record(contract, 1, 2)
        # The block exists only in memory: nothing may be served from it.
        with pytest.raises(ChainStoreError):
            chain.w3.eth.block_number  # noqa: B018
    with EmbeddedBackend(tmp_path) as chain:
        assert chain.w3.eth.block_number == head
        assert read_slot(chain.w3, contract, 1) == 0


def test_directory_is_locked_against_a_second_writer(tmp_path: Path) -> None:
    with EmbeddedBackend(tmp_path), pytest.raises(ChainInUseError):
        EmbeddedBackend(tmp_path)
    with EmbeddedBackend(tmp_path) as chain:  # released on close
        assert chain.w3.eth.block_number == 0


def test_persistent_history_cannot_be_rewound(tmp_path: Path) -> None:
    with EmbeddedBackend(tmp_path) as chain:
        tester = chain.ethereum_tester
        snapshot_id = tester.take_snapshot()
        chain.fund(Account.from_key(WRITER_KEY).address, 1)
        with pytest.raises(NotImplementedError):
            tester.revert_to_snapshot(snapshot_id)
        with pytest.raises(NotImplementedError):
            tester.reset_to_genesis()
        assert chain.w3.eth.block_number == 1


@pytest.mark.parametrize(("name", "value"), [("format", "0"), ("chain_id", "1")])
def test_a_foreign_chain_file_is_refused(tmp_path: Path, name: str, value: str) -> None:
    with EmbeddedBackend(tmp_path):
        pass
    with sqlite3.connect(tmp_path / CHAIN_FILE) as db:
        db.execute("UPDATE meta SET value = ? WHERE name = ?", (value, name))
    db.close()
    with pytest.raises(ChainFormatError):
        EmbeddedBackend(tmp_path)
    with pytest.raises(ChainFormatError):  # and the failed open released the directory
        EmbeddedBackend(tmp_path)


_CRASH_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from eth_account import Account
    from ledger.chain.backends.embedded import EmbeddedBackend

    data_dir, contract, first = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    backend = EmbeddedBackend(data_dir)
    w3 = backend.w3
    account = Account.from_key(bytes.fromhex(sys.argv[4]))
    chain_id = w3.eth.chain_id
    nonce = w3.eth.get_transaction_count(account.address)
    print("ready", flush=True)
    key = first
    while True:
        tx = {
            "chainId": chain_id, "nonce": nonce, "to": contract, "value": 0, "gas": 100000,
            "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
            "data": key.to_bytes(32, "big") + (key + 1).to_bytes(32, "big"),
        }
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.get_transaction_receipt(tx_hash)
        assert receipt["status"] == 1
        nonce += 1
        print(tx_hash.hex(), key, flush=True)
        key += 1
    """
)


def _child_env() -> dict[str, str]:
    """The environment for a writer subprocess: this checkout first on its import path."""
    paths = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _assert_consistent(chain: EmbeddedBackend) -> None:
    """The head's parent links reach genesis and the head's state is readable."""
    w3 = chain.w3
    head = w3.eth.get_block("latest")
    block = head
    while block["number"] > 0:
        parent = w3.eth.get_block(block["parentHash"])
        assert parent["number"] == block["number"] - 1
        assert w3.eth.get_block(parent["number"])["hash"] == parent["hash"]
        block = parent
    evm = chain.ethereum_tester.backend.chain
    with chain.lock:
        state = evm.get_vm(evm.get_canonical_head()).state
        assert state.state_root == bytes(head["stateRoot"])
        assert state.get_balance(bytes(20)) >= 0  # walks the state trie from its root


def test_sigkill_never_loses_an_acknowledged_write(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    with EmbeddedBackend(tmp_path) as chain:
        contract = funded_writer(chain).deploy()

    acknowledged: dict[str, int] = {}
    env = _child_env()
    for round_ in range(3):
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CRASH_WRITER,
                str(tmp_path),
                contract,
                str(round_ * 100_000),
                WRITER_KEY.hex(),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            for _ in range(rng.randint(1, 15)):
                tx_hash, key = child.stdout.readline().split()
                acknowledged[tx_hash] = int(key)
            time.sleep(rng.uniform(0, 0.05))  # land anywhere in a write, or between two
        finally:
            child.send_signal(signal.SIGKILL)
            rest, _ = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        complete_lines = rest.split("\n")[:-1]  # a torn last line was never acknowledged
        for line in complete_lines:  # printed before the kill: acknowledged too
            tx_hash, key = line.split()
            acknowledged[tx_hash] = int(key)

        with EmbeddedBackend(tmp_path) as chain:
            w3 = chain.w3
            for tx_hash, key in acknowledged.items():
                receipt = w3.eth.get_transaction_receipt(tx_hash)
                assert receipt["status"] == 1, f"seed {seed}"
                assert read_slot(w3, contract, key) == key + 1, f"seed {seed}"
            _assert_consistent(chain)
            (check,) = (
                sqlite3.connect(tmp_path / CHAIN_FILE).execute("PRAGMA quick_check").fetchone()
            )
            assert check == "ok"
    assert len(acknowledged) >= 3


_TORN_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from eth_account import Account
    from ledger.chain.backends.embedded import EmbeddedBackend

    class TornConnection:
        # Once armed, lets a fraction of the next block's rows reach SQLite, then stalls.
        armed = False

        def __init__(self, conn, store):
            self._conn, self._store, self._written = conn, store, 0

        def __getattr__(self, name):
            return getattr(self._conn, name)

        def execute(self, *args):
            return self._conn.execute(*args)

        def executemany(self, sql, rows):
            rows = list(rows)
            if self.armed and sql.startswith("INSERT OR REPLACE INTO kv"):
                room = int(len(self._store._pending) * float(sys.argv[4])) - self._written
                if room < len(rows):
                    self._conn.executemany(sql, rows[:room])
                    print("torn", flush=True)
                    time.sleep(60)
                self._written += len(rows)
            return self._conn.executemany(sql, rows)

    backend = EmbeddedBackend(Path(sys.argv[1]))
    store = backend._store
    torn = store._conn = TornConnection(store._conn, store)
    w3, contract = backend.w3, sys.argv[2]
    account = Account.from_key(bytes.fromhex(sys.argv[3]))
    nonce = w3.eth.get_transaction_count(account.address)
    for key in range(4):
        torn.armed = key == 3
        tx = {
            "chainId": w3.eth.chain_id, "nonce": nonce + key, "to": contract, "value": 0,
            "gas": 100000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
            "data": key.to_bytes(32, "big") + (key + 1).to_bytes(32, "big"),
        }
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        print(tx_hash.hex(), flush=True)
    """
)


@pytest.mark.parametrize("torn_at", [0.5, 0.95])
def test_a_block_torn_mid_commit_is_absent_not_half_there(tmp_path: Path, torn_at: float) -> None:
    # Kill the writer while part of a block's rows are written: the block must vanish whole,
    # leaving the previous block as the head (one SQLite transaction per block).
    with EmbeddedBackend(tmp_path) as chain:
        writer = funded_writer(chain)
        contract = writer.deploy()
        head_before, nonce_before = chain.w3.eth.block_number, writer.nonce
    env = _child_env()
    args = [str(tmp_path), contract, WRITER_KEY.hex(), str(torn_at)]
    child = subprocess.Popen(
        [sys.executable, "-c", _TORN_WRITER, *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    try:
        lines = [child.stdout.readline().strip() for _ in range(4)]
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    acknowledged, marker = lines[:3], lines[3]
    assert marker == "torn"

    with EmbeddedBackend(tmp_path) as chain:
        w3 = chain.w3
        assert w3.eth.block_number == head_before + 3
        for tx_hash in acknowledged:
            assert w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
        assert read_slot(w3, contract, 2) == 3
        assert read_slot(w3, contract, 3) == 0  # the torn block's write is gone
        _assert_consistent(chain)
        assert Writer(chain).nonce == nonce_before + 3  # the torn one can be sent again


def test_the_chain_stores_memory_is_bounded_and_every_key_still_reads(tmp_path: Path) -> None:
    """A long-lived service writes a block after another: what the store keeps in memory stops
    at its bound (issue 27, memory flat over a long run), and a key it let go reads from the
    file."""
    store = SqliteKeyValueStore(tmp_path / "kv.sqlite3")
    try:
        keys = [keccak(i.to_bytes(4, "big")) for i in range(_CACHE_ENTRIES + 500)]
        for start in range(0, len(keys), 1_000):  # a block's writes, committed together
            for key in keys[start : start + 1_000]:
                store[key] = key[::-1]
            store.commit()
            assert len(store._cache) <= _CACHE_ENTRIES
        assert len(store._cache) == _CACHE_ENTRIES
        assert keys[0] not in store._cache  # the oldest went first
        assert all(store[key] == key[::-1] for key in keys)
        assert len(store._cache) == _CACHE_ENTRIES
    finally:
        store.close()
