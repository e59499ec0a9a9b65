"""Reads anyone may ask for, on the embedded chain: reader processes at the last committed block,
never behind the writer's lock, every call bounded in gas and in time.

Before these, one lock served every request: four endless-loop ``eth_call`` s over ``/rpc``
delayed a registration by 85 s (issue 15).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from py_ecc.optimized_bn128 import G1, G2, normalize
from web3 import Web3
from web3.exceptions import Web3RPCError

from ledger.chain.backends._chaindb import CommittedView
from ledger.chain.backends.embedded import CHAIN_FILE, EmbeddedBackend
from ledger.chain.backends.reads import ReadLimits, ReadTimeout

ENDLESS_LOOP = "0x5b600056"  # JUMPDEST; PUSH1 0; JUMP: issue 15's call
RETURNS_42 = "0x602a60005260206000f3"  # MSTORE(0, 42); RETURN(0, 32), run as init code
PAIRING = "0x0000000000000000000000000000000000000008"
THREAD_TIMEOUT = 60  # a guard so that a regression fails instead of hanging


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    with EmbeddedBackend(tmp_path / "chain") as backend:
        yield backend


def reader(chain: EmbeddedBackend, **limits: float) -> Web3:
    return chain.read_node(ReadLimits(**{"readers": 2, **limits}))  # type: ignore[arg-type]


def rpc_error(excinfo: pytest.ExceptionInfo[Web3RPCError]) -> dict:
    return excinfo.value.rpc_response["error"]


def in_thread(work, timeout: float = THREAD_TIMEOUT) -> tuple[threading.Thread, list]:
    """Run ``work`` in a thread; its result lands in the returned list."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    thread.start()
    thread.join(timeout)
    return thread, out


def test_reads_see_every_acknowledged_write(chain: EmbeddedBackend) -> None:
    reads = reader(chain)
    someone = Account.create().address
    for expected in (1, 2, 3):
        chain.fund(someone, 10**18)
        assert reads.eth.get_balance(someone) == expected * 10**18
        assert reads.eth.block_number == chain.w3.eth.block_number
    latest = chain.w3.eth.get_block("latest")
    assert reads.eth.get_block("latest") == latest
    tx = latest["transactions"][0]
    assert reads.eth.get_transaction_receipt(tx) == chain.w3.eth.get_transaction_receipt(tx)


def test_a_read_never_waits_for_the_writers_lock(chain: EmbeddedBackend) -> None:
    reads = reader(chain)
    reads.eth.block_number  # noqa: B018 - the reader is started
    held, release = threading.Event(), threading.Event()

    def long_write() -> None:  # what a write does: hold the chain's lock
        with chain.lock:
            held.set()
            release.wait(THREAD_TIMEOUT)

    writer = threading.Thread(target=long_write, daemon=True)
    writer.start()
    held.wait(THREAD_TIMEOUT)
    blocked = None
    try:
        done, answer = in_thread(lambda: reads.eth.call({"data": RETURNS_42}))
        assert not done.is_alive() and int.from_bytes(answer[0], "big") == 42
        blocked, _ = in_thread(lambda: chain.w3.eth.block_number, timeout=0.5)
        assert blocked.is_alive()  # the writer's own path does wait, as it must
    finally:
        release.set()
    writer.join(THREAD_TIMEOUT)
    if blocked is not None:  # its read ends before the chain closes, not after
        blocked.join(THREAD_TIMEOUT)


def test_calls_agree_with_the_writers_chain(chain: EmbeddedBackend) -> None:
    reads = reader(chain)
    assert reads.eth.call({"data": RETURNS_42}) == chain.w3.eth.call({"data": RETURNS_42})
    transfer = {"to": Account.create().address, "value": 1}
    assert reads.eth.estimate_gas(transfer) == chain.w3.eth.estimate_gas(transfer) == 21_000
    assert reads.eth.chain_id == chain.w3.eth.chain_id
    unfunded = {"from": Account.create().address, "data": RETURNS_42}
    assert int.from_bytes(reads.eth.call(unfunded), "big") == 42


def test_the_gas_cap_stops_an_endless_loop(chain: EmbeddedBackend) -> None:
    reads = reader(chain, gas_cap=1_000_000, time_budget=60)
    with pytest.raises(Web3RPCError) as call:
        reads.eth.call({"data": ENDLESS_LOOP})
    assert rpc_error(call) == {"code": -32000, "message": "out of gas"}
    with pytest.raises(Web3RPCError) as asked_more:
        reads.eth.call({"data": ENDLESS_LOOP, "gas": 30_000_000})  # capped all the same
    assert rpc_error(asked_more)["message"] == "out of gas"
    with pytest.raises(Web3RPCError) as estimate:
        reads.eth.estimate_gas({"data": ENDLESS_LOOP})
    assert rpc_error(estimate) == {
        "code": -32000,
        "message": "gas required exceeds allowance (1000000)",
    }


def test_the_time_budget_stops_an_endless_loop_and_the_reader_goes_on(
    chain: EmbeddedBackend,
) -> None:
    reads = reader(chain, gas_cap=10**9, time_budget=0.3)
    with pytest.raises(Web3RPCError) as call:
        reads.eth.call({"data": ENDLESS_LOOP})
    assert rpc_error(call) == {"code": -32000, "message": "execution aborted (timeout = 0.3s)"}
    with pytest.raises(Web3RPCError) as estimate:
        reads.eth.estimate_gas({"data": ENDLESS_LOOP})
    assert rpc_error(estimate)["message"] == "execution aborted (timeout = 0.3s)"
    assert chain.readers is not None
    pids = chain.readers.pids
    assert reads.eth.call({"data": RETURNS_42})[-1] == 42
    assert chain.readers.pids == pids  # aborted by itself: no reader was killed


def _pairs(count: int) -> str:
    """``count`` valid (G1, G2) pairs for the pairing precompile: each costs py_ecc ~0.2 s."""
    g1, g2 = normalize(G1), normalize(G2)
    g1_bytes = int(g1[0]).to_bytes(32, "big") + int(g1[1]).to_bytes(32, "big")
    g2_bytes = b"".join(int(c).to_bytes(32, "big") for xy in g2 for c in reversed(xy.coeffs))
    point = g1_bytes + g2_bytes
    return "0x" + (point * count).hex()


def test_a_reader_stuck_in_a_precompile_is_killed_and_replaced(chain: EmbeddedBackend) -> None:
    """No instruction runs inside a precompile, so only the process can be stopped: it is
    killed past its budget, and the next read gets a new reader."""
    reads = reader(chain, gas_cap=10**9, time_budget=0.2)
    reads.eth.block_number  # noqa: B018
    assert chain.readers is not None
    before = set(chain.readers.pids)
    with pytest.raises(ReadTimeout):
        reads.eth.call({"to": PAIRING, "data": _pairs(60), "gas": 3_000_000})
    assert reads.eth.call({"data": RETURNS_42})[-1] == 42
    after = set(chain.readers.pids)
    assert len(after) <= 2 and after != before


def test_a_reader_writes_nothing(chain: EmbeddedBackend) -> None:
    reads = reader(chain)
    head = chain.w3.eth.block_number
    signed = Account.create().sign_transaction(
        {"to": Account.create().address, "value": 0, "gas": 21_000, "gasPrice": 10**9,
         "nonce": 0, "chainId": chain.w3.eth.chain_id}
    )  # fmt: skip
    with pytest.raises(Web3RPCError) as refused:
        reads.eth.send_raw_transaction(signed.raw_transaction)
    assert rpc_error(refused)["code"] == -32601
    assert chain.w3.eth.block_number == head


def test_the_committed_view_keeps_a_calls_writes_to_itself(chain: EmbeddedBackend) -> None:
    chain.fund(Account.create().address, 1)
    path = Path(chain.data_dir) / CHAIN_FILE  # type: ignore[arg-type]

    def rows() -> int:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT COUNT(*) FROM kv").fetchone()[0]

    before = rows()
    view = CommittedView(path)
    try:
        with view.scratch():
            view[b"scratch"] = b"state"
            assert view[b"scratch"] == b"state"
        with view.scratch(), pytest.raises(KeyError):
            view[b"scratch"]
    finally:
        view.close()
    assert rows() == before
    with pytest.raises(sqlite3.OperationalError):  # the file is open read-only
        CommittedView(path)._conn.execute("DELETE FROM kv")


def test_closing_the_backend_stops_its_readers(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "chain")
    reads = reader(backend)
    reads.eth.block_number  # noqa: B018
    assert backend.readers is not None
    processes = backend.readers.processes
    assert processes and all(p.is_alive() for p in processes)
    backend.close()
    assert not any(p.is_alive() for p in processes)


def test_an_in_memory_chain_reads_through_its_own_web3() -> None:
    with EmbeddedBackend() as backend:
        assert backend.read_node(ReadLimits()) is backend.w3
        assert backend.readers is None
