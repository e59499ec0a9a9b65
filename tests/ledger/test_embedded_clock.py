"""The embedded chain's clock: a block carries the wall clock's second, and blocks may share one.

py-evm wants each block strictly later than its parent, so one block per write used to push the
chain a second ahead of the wall clock per write (300 registrations in 14 s: 285 s ahead). These
tests drive the chain at full speed and check block times against ``time.time()``; where the
wall clock itself must move (a chain stored ahead of it, an empty block mined later) the chain's
clock is shifted instead of sleeping.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth.db.atomic import AtomicDB
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.backends.pyevm.main import setup_tester_chain
from eth_utils import ValidationError

from ledger.chain.backends import _clock
from ledger.chain.backends._chaindb import SqliteKeyValueStore
from ledger.chain.backends.embedded import CHAIN_FILE, EmbeddedBackend

SENDER_KEY = b"\x42" * 32
RECIPIENT = "0x" + "11" * 20
TRANSFER_GAS = 21_000
MAX_FEE = 10**10
PRIORITY_FEE = 10**9


class Burst:
    """Plain transfers signed ahead of time, so sending them is all the chain's own work."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        self.w3 = backend.w3
        self.account: LocalAccount = Account.from_key(SENDER_KEY)
        backend.fund(self.account.address, 10**21)
        self.chain_id = self.w3.eth.chain_id
        self.nonce = self.w3.eth.get_transaction_count(self.account.address)

    def signed(self, count: int) -> list[bytes]:
        raws = []
        for _ in range(count):
            tx = {
                "chainId": self.chain_id,
                "nonce": self.nonce,
                "to": RECIPIENT,
                "value": 1,
                "gas": TRANSFER_GAS,
                "maxFeePerGas": MAX_FEE,
                "maxPriorityFeePerGas": PRIORITY_FEE,
            }
            raws.append(bytes(self.account.sign_transaction(tx).raw_transaction))
            self.nonce += 1
        return raws

    def send(self, raws: list[bytes]) -> float:
        """Send each transaction and wait for its block; return when the last one was sent."""
        sent_last = time.time()
        for raw in raws:
            sent_last = time.time()
            receipt = self.w3.eth.get_transaction_receipt(self.w3.eth.send_raw_transaction(raw))
            assert receipt["status"] == 1
        return sent_last


def timestamps(backend: EmbeddedBackend, first: int = 0) -> list[int]:
    w3 = backend.w3
    return [w3.eth.get_block(n)["timestamp"] for n in range(first, w3.eth.block_number + 1)]


def shared_seconds(stamps: list[int]) -> int:
    """How many blocks are dated the same second as the block before them."""
    return sum(1 for older, newer in itertools.pairwise(stamps) if older == newer)


class ShiftedClock:
    """Stands in for the ``time`` module in ``_clock``: the wall clock plus ``offset`` seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def chain_clock(monkeypatch: pytest.MonkeyPatch) -> ShiftedClock:
    clock = ShiftedClock()
    monkeypatch.setattr(_clock, "time", clock)
    return clock


# -- the wall clock under load ---------------------------------------------------------------


def test_a_burst_of_1000_writes_keeps_block_time_on_the_wall_clock() -> None:
    with EmbeddedBackend() as backend:
        burst = Burst(backend)
        first = backend.w3.eth.block_number + 1
        raws = burst.signed(1000)
        started = time.time()
        sent_last = burst.send(raws)
        finished = time.time()
        stamps = timestamps(backend, first)

    assert len(stamps) == 1000
    # The newest block is dated the second its write arrived: within 1 s of the wall clock.
    assert int(sent_last) <= stamps[-1] <= finished
    assert finished - stamps[-1] < 1 + (finished - sent_last)
    # Every block is dated inside the burst, so blocks share seconds (1000 writes take a few).
    assert int(started) <= stamps[0] and stamps[-1] <= finished
    assert len(set(stamps)) <= int(finished) - int(started) + 1
    assert shared_seconds(stamps) >= 1000 - (int(finished) - int(started) + 1)
    assert stamps == sorted(stamps)  # never decreasing


def test_reopening_keeps_the_rule(tmp_path: Path) -> None:
    started = time.time()
    with EmbeddedBackend(tmp_path) as backend:
        burst = Burst(backend)
        burst.send(burst.signed(100))
        closed_at = backend.w3.eth.block_number
    with EmbeddedBackend(tmp_path) as backend:
        burst = Burst(backend)
        sent_last = burst.send(burst.signed(100))
        finished = time.time()
        stamps = timestamps(backend)

    assert stamps == sorted(stamps)
    assert int(started) <= stamps[1] and stamps[-1] <= finished  # stamps[0] is the genesis
    assert int(sent_last) <= stamps[-1]
    after_reopen = stamps[closed_at + 1 :]
    assert len(after_reopen) == 101  # the faucet's transfer, then the burst
    assert shared_seconds(after_reopen) >= len(after_reopen) - (int(finished) - int(started) + 1)


def test_a_block_is_dated_when_its_write_arrives_or_when_it_is_mined_empty(
    chain_clock: ShiftedClock,
) -> None:
    # eth-tester dates the pending block when its predecessor is mined; a record's block time
    # must be when it was written, and an empty block's when it was mined.
    with EmbeddedBackend() as backend:
        w3 = backend.w3
        backend.fund(RECIPIENT, 1)
        chain_clock.offset = 30
        before = int(chain_clock.time())
        with backend.lock:
            backend.ethereum_tester.mine_blocks(2)
        after = chain_clock.time()
        head = w3.eth.block_number
        mined = [w3.eth.get_block(n)["timestamp"] for n in (head - 1, head)]
        assert before <= mined[0] <= mined[1] <= after

        chain_clock.offset = 90
        before = int(chain_clock.time())
        backend.fund(RECIPIENT, 1)
        written = w3.eth.get_block("latest")["timestamp"]
        assert before <= written <= chain_clock.time()


# -- a chain stored ahead of the wall clock ----------------------------------------------------


def _store_blocks_the_old_way(data_dir: Path, blocks: int) -> None:
    """Mine ``blocks`` empty blocks with eth-tester's stock chain class, as the code before the
    wall-clock rule did: each strictly later than its parent, so the head runs ahead."""
    _keys, stock = setup_tester_chain()
    store = SqliteKeyValueStore(data_dir / CHAIN_FILE)
    try:
        chain = type(stock)(AtomicDB(store))
        for _ in range(blocks):
            chain.mine_block()
            store.commit()
    finally:
        store.close()


def test_a_chain_stored_ahead_of_the_clock_opens_and_never_dates_a_block_earlier(
    tmp_path: Path, chain_clock: ShiftedClock
) -> None:
    with EmbeddedBackend(tmp_path):
        pass  # genesis and metadata, as the service writes them
    _store_blocks_the_old_way(tmp_path, 40)

    with EmbeddedBackend(tmp_path) as backend:
        head = backend.w3.eth.get_block("latest")
        assert head["number"] == 40
        assert head["timestamp"] > time.time() + 30  # the stored head is in the future
        burst = Burst(backend)
        burst.send(burst.signed(5))
        ahead = timestamps(backend, 41)
    # Until the wall clock catches up, new blocks take the parent's second, never an earlier one.
    assert ahead == [head["timestamp"]] * 6

    chain_clock.offset = 60  # the wall clock overtakes the stored head
    before = int(chain_clock.time())
    with EmbeddedBackend(tmp_path) as backend:
        burst = Burst(backend)
        burst.send(burst.signed(3))
        caught_up = timestamps(backend, 47)
    # Once it has, blocks are dated by the wall clock again.
    assert len(caught_up) == 4
    assert head["timestamp"] < before <= caught_up[0]
    assert caught_up == sorted(caught_up)
    assert caught_up[-1] <= chain_clock.time()


def test_code_before_the_rule_can_still_extend_a_chain_whose_blocks_share_seconds(
    tmp_path: Path,
) -> None:
    # The header format is unchanged and stored blocks are never re-validated, so a rollback to
    # the strict rule keeps working on a chain written under the wall-clock rule.
    with EmbeddedBackend(tmp_path) as backend:
        burst = Burst(backend)
        burst.send(burst.signed(20))
        stamps = timestamps(backend)
    assert shared_seconds(stamps) > 0
    _store_blocks_the_old_way(tmp_path, 3)
    with EmbeddedBackend(tmp_path) as backend:
        extended = timestamps(backend)
    assert extended[: len(stamps)] == stamps
    assert len(extended) == len(stamps) + 3
    assert stamps[-1] < extended[-3] < extended[-2] < extended[-1]


# -- the VM rule itself ------------------------------------------------------------------------


@pytest.fixture
def chain_and_head() -> Iterator[tuple[Any, Any]]:
    with EmbeddedBackend() as backend:
        backend.fund(RECIPIENT, 1)
        chain = backend.ethereum_tester.backend.chain
        yield chain, chain.get_canonical_head()


def test_the_vm_accepts_the_parents_second_and_rejects_an_earlier_one(
    chain_and_head: tuple[Any, Any],
) -> None:
    chain, parent = chain_and_head
    vm_class = chain.get_vm_class(parent)
    fork = vm_class.__mro__[1]  # the fork eth-tester runs, which the rule derives from
    assert vm_class.__name__ == f"WallClock{fork.__name__}"
    child = chain.create_header_from_parent(parent, timestamp=parent.timestamp)

    vm_class.validate_header(child, parent)  # the parent's second: accepted
    with pytest.raises(ValidationError, match="strictly later"):
        fork.validate_header(child, parent)  # (py-evm's own rule would refuse it)
    earlier = child.copy(timestamp=parent.timestamp - 1)
    with pytest.raises(ValidationError, match="strictly later"):
        vm_class.validate_header(earlier, parent)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("block_number", 99, "consecutively"),
        ("gas_limit", 1, "[Gg]as limit"),
        ("base_fee_per_gas", 1, "[Bb]ase fee"),
        ("difficulty", 1, "Difficulty"),
        ("extra_data", b"x" * 33, "extra_data"),
    ],
)
def test_every_other_header_rule_still_holds_in_a_shared_second(
    chain_and_head: tuple[Any, Any], field: str, value: Any, message: str
) -> None:
    chain, parent = chain_and_head
    vm_class = chain.get_vm_class(parent)
    child = chain.create_header_from_parent(parent, timestamp=parent.timestamp)
    broken = child.copy(**{field: value})
    with pytest.raises(ValidationError, match=message):
        vm_class.validate_header(broken, parent)


def test_a_new_header_takes_the_wall_clock_or_the_parents_second_whichever_is_later(
    chain_and_head: tuple[Any, Any],
) -> None:
    chain, parent = chain_and_head
    now = int(time.time())
    in_the_past = parent.copy(timestamp=now - 1000)
    in_the_future = parent.copy(timestamp=now + 1000)
    assert chain.create_header_from_parent(in_the_past).timestamp in (now, now + 1)
    assert chain.create_header_from_parent(in_the_future).timestamp == now + 1000


def test_1000_registrations_at_full_speed_leave_the_head_on_the_wall_clock() -> None:
    """Issue 12's acceptance line as written: contract registrations, one block each, as fast
    as the client sends them; the newest block is dated within 1 s of the wall clock."""
    import os

    from ledger.chain.client import LedgerClient

    backend = EmbeddedBackend()
    try:
        account = Account.create()
        backend.fund(account.address, 10**21)
        client, _ = LedgerClient.deploy(backend, account)
        for _ in range(1000):
            client.register_dataset(
                os.urandom(32), rows_root=os.urandom(32), row_count=1, schema_hash=os.urandom(32)
            )
        head = backend.w3.eth.get_block("latest")
        assert head["number"] >= 1000
        assert head["timestamp"] <= time.time() + 1
        assert time.time() - head["timestamp"] < 5  # dated when written, not left behind
    finally:
        backend.close()
