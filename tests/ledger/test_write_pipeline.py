"""ledger.writes.pipeline on the embedded chain and on anvil with ``--block-time 1``.

Concurrent writes are gathered into few transactions and one bad record among them fails alone,
with its own typed error; a repeated write sends nothing more; a chunk too big for one
transaction is split; revocations and role changes get their own transactions. On RPC nodes: a
restart with writes in flight leaves no nonce gap and sends nothing twice, and a transaction the
node lost is sent again at the same nonce with higher fees. Background behaviour is observed by
polling with generous timeouts, never by timing. It runs past 400 lines as the pipeline it
tests is one protocol, its cases sharing the chains and helpers above them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak

from ledger.chain._calls import datasets_call
from ledger.chain._transactor import FEE_BUMP
from ledger.chain.backends.embedded import EmbeddedBackend
from ledger.chain.backends.rpc import RpcBackend
from ledger.chain.client import LedgerClient
from ledger.chain.devnode import AnvilNode, anvil_binary
from ledger.errors import (
    AlreadyRevoked,
    ChainUnavailable,
    DatasetAlreadyRegistered,
    InvalidRecord,
    LedgerError,
    NotAuthorized,
    UnknownDataset,
)
from ledger.records import (
    ZERO_HASH,
    DatasetInput,
    DatasetRegistered,
    ModelInput,
    RecordRevoked,
    RoleChanged,
    hash_hex,
)
from ledger.writes._items import calldata_bound, concerns_all, culprit
from ledger.writes._journal import TxJournal
from ledger.writes.pipeline import MAX_TX_BYTES, Included, RevokeInput, RoleInput, WritePipeline
from tests.conftest import ETHER, Chain

TIMEOUT = 60.0  # seconds; only ever reached when something is broken


def h(n: int) -> str:
    return hash_hex(keccak(n.to_bytes(32, "big")))


def dataset(n: int, *parents: str) -> DatasetInput:
    derived = {"parents": parents, "transform_hash": h(950)} if parents else {}
    return DatasetInput(h(n), rows_root=h(900 + n), row_count=n, schema_hash=h(901), **derived)


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


@pytest.fixture
def ledger(paced_chain: Chain) -> LedgerClient:
    client, _ = LedgerClient.deploy(paced_chain.backend, paced_chain.account())
    return client


def pipeline(client: LedgerClient, **options: Any) -> WritePipeline:
    """A pipeline as the service makes it: registrations are simulated except on the embedded
    chain (see the module docstring of ledger.writes.pipeline)."""
    embedded = isinstance(client.backend, EmbeddedBackend)
    return WritePipeline(client, simulate_registrations=not embedded, **options)


@pytest.fixture
def writes(ledger: LedgerClient) -> Iterator[WritePipeline]:
    pipe = pipeline(ledger)
    yield pipe
    pipe.close()


def journaled(path: Path) -> list[Any]:
    """What the journal at ``path`` still holds, read as a restarted process would."""
    journal = TxJournal(path)
    try:
        return journal.entries()
    finally:
        journal.close()


def _nonce(client: LedgerClient) -> int:
    return client.transactor.confirmed_nonce()


# -- gathering --------------------------------------------------------------------------------


@contextmanager
def chain_paused(chain: Chain) -> Iterator[None]:
    """Nothing gets mined inside the block: the embedded chain is held (a send is mined inside
    the call, which then waits), anvil's interval mining is stopped (sends wait in its pool)."""
    if isinstance(chain.backend, EmbeddedBackend):
        with chain.backend.lock:
            yield
        return
    assert chain.node is not None
    chain.node.rpc("evm_setIntervalMining", 0)
    try:
        yield
    finally:
        chain.node.rpc("evm_setIntervalMining", 1)


def test_concurrent_writes_are_gathered_and_one_bad_record_fails_alone(
    paced_chain: Chain, ledger: LedgerClient
) -> None:
    """Ten threads write at once, one of them a dataset derived from a parent nobody
    registered. The first write goes out at once; the nine that arrive while it is in flight
    go together, the bad one is answered with its own typed error and the rest are mined."""
    writes = pipeline(ledger, max_in_flight=1)
    unknown_parent = h(999)
    items = [dataset(n) for n in range(1, 11)]
    items[3] = dataset(4, unknown_parent)
    results: list[Included | LedgerError | None] = [None] * len(items)

    def write(position: int) -> None:
        results[position] = writes.write_many([items[position]])[0]

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(items))]
    with chain_paused(paced_chain):
        threads[0].start()
        _wait_until(lambda: writes.waiting == 1, "the first write is being sent")
        for thread in threads[1:]:
            thread.start()
        _wait_until(lambda: writes.waiting == len(items), "every write is waiting")
    for thread in threads:
        thread.join(TIMEOUT)
    writes.close()

    bad = results[3]
    assert isinstance(bad, UnknownDataset)
    assert bad.context["record_hash"] == unknown_parent
    good = [r for i, r in enumerate(results) if i != 3]
    assert all(isinstance(r, Included) and r.created for r in good), good
    for item, included in zip([i for n, i in enumerate(items) if n != 3], good, strict=True):
        assert isinstance(included, Included) and isinstance(included.event, DatasetRegistered)
        assert included.event.content_hash == item.content_hash
        assert included.event.tx_hash == included.tx_hash
    # one transaction for the first, one for the eight good ones gathered behind it
    assert len({r.tx_hash for r in good if isinstance(r, Included)}) == 2
    registered = ledger.get_records([i.content_hash for i in items])
    assert [r is not None for r in registered] == [n != 3 for n in range(len(items))]


def test_a_feeder_can_wait_for_the_round_being_sent(
    writes: WritePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``wait_for_round`` (what the sender role of a replica waits on before it claims the
    writes queued meanwhile) returns once the round being sent ends, or at its timeout."""
    writes.wait_for_round(60)  # no round: at once
    sending, release = threading.Event(), threading.Event()
    real_send_round = writes._send_round

    def held_round(batch: Any) -> None:
        sending.set()
        release.wait(60)
        real_send_round(batch)

    monkeypatch.setattr(writes, "_send_round", held_round)
    future = writes.submit(dataset(1))
    assert sending.wait(60)
    writes.wait_for_round(0.01)  # the round goes on: back at the timeout
    waiter = threading.Thread(target=writes.wait_for_round, args=(60,))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # still waiting for the round
    release.set()
    waiter.join(60)
    assert not waiter.is_alive()
    assert future.result(60).created


def test_a_write_leaves_the_head_it_read_for_the_answer(
    writes: WritePipeline, ledger: LedgerClient
) -> None:
    """The service answers a write with its confirmations from the head: where the pipeline
    watched for the receipt (RPC nodes) it read the head, which the answer then reuses; a read
    of the head is remembered either way, and only for ``max_age`` seconds."""
    done = writes.write(dataset(1))
    if not isinstance(ledger.backend, EmbeddedBackend):  # the waiter's own read of the head
        seen = ledger.recent_head(60)
        assert seen is not None and seen >= done.block_number
    head = ledger.latest_block()
    assert ledger.recent_head(60) == head
    time.sleep(0.05)
    assert ledger.recent_head(0.01) is None


def test_a_write_repeated_in_flight_or_just_after_sends_nothing_more(
    ledger: LedgerClient, writes: WritePipeline
) -> None:
    item = dataset(1)
    first, again = writes.write_many([item, item])
    assert isinstance(first, Included) and isinstance(again, Included)
    assert (first.created, again.created) == (True, False)
    assert first.tx_hash == again.tx_hash
    nonce = _nonce(ledger)
    later = writes.write(item)
    assert (later.created, later.tx_hash) == (False, first.tx_hash)
    assert writes.recent(item.content_hash) == first
    assert _nonce(ledger) == nonce


def test_a_record_registered_elsewhere_answers_with_its_typed_error(
    ledger: LedgerClient, writes: WritePipeline
) -> None:
    """A write the pipeline did not make (another service on the same key, or a client call)
    is refused by the chain, naming it; the writes beside it still go through."""
    ledger.register_dataset(h(1), rows_root=h(2), row_count=1, schema_hash=h(3))
    taken, fresh = writes.write_many([dataset(1), dataset(2)])
    assert isinstance(taken, DatasetAlreadyRegistered)
    assert taken.context["record_hash"] == h(1)
    assert isinstance(fresh, Included) and fresh.created


def test_writes_too_large_for_one_transaction_are_split(
    ledger: LedgerClient, writes: WritePipeline
) -> None:
    per_transaction = MAX_TX_BYTES // calldata_bound(dataset(1))  # calldata a pool takes
    items = [dataset(n) for n in range(1, per_transaction + 21)]
    nonce = _nonce(ledger)
    results = writes.write_many(items)
    assert all(isinstance(r, Included) and r.created for r in results)
    transactions = {r.tx_hash for r in results if isinstance(r, Included)}
    assert len(transactions) == 2
    assert _nonce(ledger) == nonce + 2
    assert None not in ledger.get_records([i.content_hash for i in items])


def test_revocations_and_registrar_changes_each_get_a_transaction(
    paced_chain: Chain, ledger: LedgerClient, writes: WritePipeline
) -> None:
    writes.write_many([dataset(1), dataset(2)])
    newcomer = Account.create().address
    first, second, grant = writes.write_many(
        [RevokeInput(h(1), "stale"), RevokeInput(h(2), "wrong"), RoleInput(newcomer, grant=True)]
    )
    assert isinstance(first, Included) and isinstance(first.event, RecordRevoked)
    assert (first.event.record_hash, first.event.reason) == (h(1), "stale")
    assert isinstance(second, Included) and second.tx_hash != first.tx_hash
    assert isinstance(grant, Included) and isinstance(grant.event, RoleChanged)
    assert grant.event.granted and ledger.is_registrar(newcomer)
    nonce = _nonce(ledger)
    with pytest.raises(AlreadyRevoked):  # simulated first: nothing is sent
        writes.write(RevokeInput(h(1), "again"))
    assert _nonce(ledger) == nonce
    model = ModelInput(h(50), datasets=(h(1),), metadata_hash=h(51))
    refused = writes.write_many([model])[0]
    assert isinstance(refused, LedgerError) and "revoked" in str(refused)


# -- which write a revert names ---------------------------------------------------------------


class _W:
    def __init__(self, item: Any, key: str | None = None) -> None:
        self.item = item
        self.key = key or item.content_hash


def test_the_culprit_is_the_record_a_revert_names() -> None:
    parent, child, other = dataset(1), dataset(2, h(1)), dataset(3)
    writes = [_W(parent), _W(child), _W(other)]
    already = DatasetAlreadyRegistered("taken", record_hash=h(3))
    assert culprit(already, writes) is writes[2]
    # an unknown (or revoked) input names the parent: the write that names it is the culprit
    unknown = UnknownDataset("no parent", record_hash=h(1))
    assert culprit(unknown, writes) is writes[1]
    zero = DatasetInput(ZERO_HASH, rows_root=h(1), row_count=1, schema_hash=h(1))
    assert culprit(InvalidRecord("a record hash must not be zero"), [*writes, _W(zero)]).item == (
        zero
    )
    # a refusal about the sender or the node concerns every write
    lost_role = NotAuthorized("lacks role", account="0x" + "11" * 20)
    assert culprit(lost_role, writes) is None and concerns_all(lost_role)
    assert concerns_all(ChainUnavailable("down"))
    assert not concerns_all(already)


# -- RPC nodes: restarts and stuck transactions -----------------------------------------------


def _own_transactions(node: AnvilNode, address: str, first_block: int) -> list[dict[str, Any]]:
    """Every transaction ``address`` sent from ``first_block`` on, with its receipt status."""
    found = []
    head = int(node.rpc("eth_blockNumber"), 16)
    for number in range(first_block, head + 1):
        block = node.rpc("eth_getBlockByNumber", hex(number), True)
        for tx in block["transactions"]:
            if tx["from"].lower() == address.lower():
                receipt = node.rpc("eth_getTransactionReceipt", tx["hash"])
                found.append({**tx, "status": int(receipt["status"], 16)})
    return found


@pytest.mark.anvil
def test_a_restart_with_writes_in_flight_leaves_no_gap_and_sends_nothing_twice(
    anvil_paced_node: AnvilNode, tmp_path: Path
) -> None:
    node = anvil_paced_node
    account = Account.create()
    node.set_balance(account.address, 100 * ETHER)
    client, _ = LedgerClient.deploy(RpcBackend(node.url), account)
    path = tmp_path / "writes.sqlite3"

    # Run 1 dies with two writes journaled: the first in the node's pool, the second never
    # handed over (the process died between journaling it and sending it).
    journal = TxJournal(path)
    first, second = dataset(1), dataset(2)
    transactor = client.transactor
    call = datasets_call([first])
    sent = transactor.broadcast(
        client.transaction(call),
        gas=call.gas,
        before_send=lambda signed: journal.record(signed, [first.content_hash]),
    )

    class Died(Exception):
        pass

    def die(signed: Any) -> None:
        journal.record(signed, [second.content_hash])
        raise Died

    call = datasets_call([second])
    with pytest.raises(Died):
        transactor.broadcast(client.transaction(call), gas=call.gas, before_send=die)
    journal.close()

    # Run 2: a new process for the same key and journal.
    restarted = LedgerClient(
        RpcBackend(node.url), account, client.address, deploy_block=client.deploy_block
    )
    writes = WritePipeline(restarted, journal=TxJournal(path))
    assert writes.recover() == 2
    retried = writes.submit(first)  # the client that never heard back asks again
    third = writes.write(dataset(3))  # a new write takes the next nonce
    again = retried.result(TIMEOUT)
    assert (again.created, again.tx_hash) == (False, sent.tx_hash)
    _wait_until(lambda: writes.waiting == 0 and not journaled(path), "all are mined")
    writes.close()

    assert None not in restarted.get_records([first.content_hash, second.content_hash, h(3)])
    mine = _own_transactions(node, account.address, client.deploy_block + 1)
    assert [int(tx["nonce"], 16) for tx in mine] == [sent.nonce, sent.nonce + 1, sent.nonce + 2]
    assert all(tx["status"] == 1 for tx in mine)  # nothing reverted: nothing was sent twice
    assert mine[2]["hash"] == third.tx_hash


@pytest.mark.anvil
@pytest.mark.skipif(anvil_binary() is None, reason="anvil not installed")
def test_a_transaction_the_node_dropped_is_sent_again_at_the_same_nonce_with_higher_fees(
    tmp_path: Path,
) -> None:
    with AnvilNode(tmp_path / "anvil") as node:
        account = Account.create()
        node.set_balance(account.address, 100 * ETHER)
        client, _ = LedgerClient.deploy(RpcBackend(node.url), account)
        node.rpc("evm_setAutomine", False)  # from here on, blocks come when the test mines
        journal = tmp_path / "writes.sqlite3"
        writes = WritePipeline(
            client, journal=TxJournal(journal), resend_after_blocks=2, poll_interval=0.02
        )
        future = writes.submit(dataset(1))

        def pooled() -> list[dict[str, Any]]:
            pool = node.rpc("txpool_content")["pending"]
            ours = [
                txs for sender, txs in pool.items() if sender.lower() == account.address.lower()
            ]
            return [tx for txs in ours for tx in txs.values()]

        _wait_until(lambda: len(pooled()) == 1, "the write is in the pool")
        [original] = pooled()
        # The base fee jumps; the node drops the transaction, which now pays too little.
        node.rpc("anvil_setNextBlockBaseFeePerGas", hex(100 * 10**9))
        node.mine()
        assert pooled() == []

        # Blocks go by without it; after two the pipeline signs it again and re-sends it.
        def resent() -> bool:
            entries = journaled(journal)
            if future.done() or (entries and len(entries[0].variants) > 1):
                return True
            node.mine()
            return False

        _wait_until(resent, "it is sent again")
        _wait_until(lambda: future.done() or node.mine() or False, "it is mined")
        included = future.result(TIMEOUT)
        assert included.created
        mined = node.rpc("eth_getTransactionByHash", included.tx_hash)
        assert mined["nonce"] == original["nonce"]
        assert mined["hash"] != original["hash"]
        for fee in ("maxFeePerGas", "maxPriorityFeePerGas"):
            assert int(mined[fee], 16) >= FEE_BUMP * int(original[fee], 16)
        _wait_until(lambda: not journaled(journal), "the journal forgets the nonce")
        writes.close()
        assert client.get_records([h(1)])[0] is not None


class _GuardedCache(OrderedDict):  # type: ignore[type-arg]
    """The pipeline's block cache, noting each use made without the pipeline's lock."""

    def __init__(self, lock: Any, unlocked: list[str]) -> None:
        super().__init__()
        self.lock, self.unlocked = lock, unlocked

    def _note(self, what: str) -> None:
        if not self.lock.locked():
            self.unlocked.append(what)

    def get(self, key: Any, default: Any = None) -> Any:
        self._note("get")
        return super().get(key, default)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._note("set")
        super().__setitem__(key, value)

    def popitem(self, last: bool = True) -> Any:
        self._note("popitem")
        return super().popitem(last=last)


def test_the_block_cache_is_shared_under_the_lock(writes: WritePipeline) -> None:
    """The sender (answering at once on an automining chain) and the waiter both read and
    fill the cache of mined blocks, so it is used under the pipeline's lock like every other
    shared field."""
    unlocked: list[str] = []
    writes._blocks = _GuardedCache(writes._lock, unlocked)
    for future in writes.submit_many([dataset(n) for n in (71, 72, 73)]):
        future.result(TIMEOUT)
    assert len(writes._blocks) >= 1
    assert unlocked == []
