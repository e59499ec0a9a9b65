"""ledger.writes.shared: several replicas' writes through the PostgreSQL queue, one sender.

Two replicas here are two :class:`SharedWrites` in this process, each with its own client of the
same key (as two processes have), on anvil with ``--block-time 1`` and the session's PostgreSQL.
The three-process tests (kill -9, PostgreSQL restarted) are in
``tests/api/test_replicas.py``; these check the protocol's parts: gathering and answering
across replicas, one row per record, typed errors carried over, the sender's session cut mid
burst (the role passes, nothing is sent twice, no nonce gap), and the fencing of the journal.
It runs past 400 lines because these share one cluster fixture and its helpers, as the
protocol they test is one file (``ledger/writes/shared.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak

from ledger.chain.backends.rpc import RpcBackend
from ledger.chain.client import LedgerClient
from ledger.chain.devnode import AnvilNode
from ledger.errors import TransactionFailed, UnknownDataset
from ledger.records import (
    DatasetInput,
    DatasetRegistered,
    ModelInput,
    RecordRevoked,
    RoleChanged,
    hash_hex,
)
from ledger.storage.postgres import PgConnections
from ledger.writes._codec import (
    error_from_json,
    error_to_json,
    included_from_json,
    included_to_json,
    item_from_json,
    item_to_json,
)
from ledger.writes._items import Included, RevokeInput, RoleInput
from ledger.writes._listener import Listener
from ledger.writes._pg_journal import (
    DONE_CHANNEL,
    NotSender,
    OutcomeBuffer,
    PgTxJournal,
    take_epoch,
)
from ledger.writes.pipeline import WritePipeline
from ledger.writes.shared import SharedWrites
from tests.conftest import ETHER

pytestmark = pytest.mark.anvil

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
        time.sleep(0.05)


class Cluster:
    """Replicas of one key on one database and one node."""

    def __init__(self, node: AnvilNode, db: PgConnections) -> None:
        self.node, self.db = node, db
        self.account = Account.create()
        node.set_balance(self.account.address, 100 * ETHER)
        self.client, _ = LedgerClient.deploy(RpcBackend(node.url), self.account)
        self.replicas: list[SharedWrites] = []

    def replica(self, **options: Any) -> SharedWrites:
        client = LedgerClient(
            RpcBackend(self.node.url),
            self.account,
            self.client.address,
            deploy_block=self.client.deploy_block,
        )
        replica = SharedWrites(
            client,
            self.db,
            lambda journal: WritePipeline(client, journal=journal),
            lock_retry=0.2,
            timeout=TIMEOUT,
            **options,
        )
        self.replicas.append(replica)
        return replica

    def sender(self) -> SharedWrites:
        _wait_until(lambda: any(r.is_sender for r in self.replicas), "a replica sends")
        [sender] = [r for r in self.replicas if r.is_sender]
        return sender

    def own_nonces(self) -> list[int]:
        """The nonces of every transaction of the key since the deployment, all successful."""
        nonces = []
        head = int(self.node.rpc("eth_blockNumber"), 16)
        for number in range(self.client.deploy_block + 1, head + 1):
            block = self.node.rpc("eth_getBlockByNumber", hex(number), True)
            for tx in block["transactions"]:
                if tx["from"].lower() == self.account.address.lower():
                    receipt = self.node.rpc("eth_getTransactionReceipt", tx["hash"])
                    assert int(receipt["status"], 16) == 1, tx["hash"]
                    nonces.append(int(tx["nonce"], 16))
        return nonces


@pytest.fixture
def cluster(anvil_paced_node: AnvilNode, empty_pg: PgConnections) -> Iterator[Cluster]:
    made = Cluster(anvil_paced_node, empty_pg)
    yield made
    for replica in made.replicas:
        replica.close(timeout=10)


def test_writes_through_every_replica_are_sent_by_one_and_answered_by_their_own(
    cluster: Cluster,
) -> None:
    a, b = cluster.replica(), cluster.replica()
    sender = cluster.sender()
    other = b if sender is a else a
    with ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit((a, b)[n % 2].write, dataset(n)) for n in range(1, 17)]
        done = [job.result(TIMEOUT) for job in jobs]
    assert all(isinstance(d.event, DatasetRegistered) and d.created for d in done)
    assert len({d.tx_hash for d in done}) < len(done)  # gathered into batch transactions
    # a record written through one is known through the other, once; a repeat sends nothing
    again = other.write(dataset(3))
    assert (again.created, again.tx_hash) == (False, done[2].tx_hash)
    assert other.recent(h(3)) is not None and other.recent(h(999)) is None
    # one bad record among good ones fails alone, with its typed error, at the asking replica
    good, bad = other.write_many([dataset(20), dataset(21, h(777))])
    assert isinstance(good, Included) and isinstance(bad, UnknownDataset)
    assert bad.context["record_hash"] == h(777)
    # the kinds without batches, through the replica that is not the sender
    revoked = other.write(RevokeInput(h(20), "bad rows"))
    assert isinstance(revoked.event, RecordRevoked)
    granted = other.write(RoleInput(Account.create().address, True))
    assert isinstance(granted.event, RoleChanged) and granted.event.granted
    nonces = cluster.own_nonces()
    assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))


def test_the_sender_tells_its_blocks_to_on_included_before_the_answers(cluster: Cluster) -> None:
    """As a single process's pipeline does (the service indexes the block from them): each
    final transaction's block and receipts, before the write is answered, by the replica that
    sent it only; the hook is read when called, so one set after the role was taken counts."""
    a, b = cluster.replica(), cluster.replica()
    sender = cluster.sender()
    told: dict[str, list[tuple[Any, list[Any]]]] = {"a": [], "b": []}
    a.on_included = lambda block, receipts: told["a"].append((block, list(receipts)))
    b.on_included = lambda block, receipts: told["b"].append((block, list(receipts)))
    other = b if sender is a else a
    done = other.write(dataset(30))  # answered after the sender told its hook
    assert told["b" if sender is a else "a"] == []  # the replica that did not send
    told_blocks = [
        (block, receipt)
        for block, receipts in told["a" if sender is a else "b"]
        for receipt in receipts
        if hash_hex(bytes(receipt["transactionHash"])) == done.tx_hash
    ]
    [(block, receipt)] = told_blocks
    assert block["number"] == receipt["blockNumber"] == done.block_number
    assert bytes(block["hash"]) == bytes(receipt["blockHash"])


def test_the_sender_cut_mid_burst_passes_the_role_and_sends_nothing_twice(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.replica(), cluster.replica(), cluster.replica()
    first = cluster.sender()
    results: list[Any] = []
    lock = threading.Lock()

    def burst(replica: SharedWrites, start: int) -> None:
        for n in range(start, start + 12):
            try:
                outcome = replica.write(dataset(n))
            except Exception as exc:
                outcome = exc
            with lock:
                results.append((n, outcome))

    threads = [
        threading.Thread(target=burst, args=(r, 100 * (k + 1))) for k, r in enumerate((a, b, c))
    ]
    for thread in threads:
        thread.start()
    _wait_until(lambda: len(results) >= 6, "the burst is under way")
    # the sender's lock session dies (as when its process is killed or cut off)
    with cluster.db.write() as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = ?",
            (first._lock_key,),
        ).fetchall()
        assert len(pids) == 1
        conn.execute("SELECT pg_terminate_backend(?)", (pids[0]["pid"],))
    _wait_until(
        lambda: any(r.is_sender and r is not first for r in cluster.replicas), "a new sender"
    )
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(results) == 36
    assert [o for _, o in results if not isinstance(o, Included)] == []
    for n, outcome in results:  # every answer is on chain as answered
        [record] = cluster.client.get_records([h(n)])
        assert record is not None and outcome.event.content_hash == h(n)
    nonces = cluster.own_nonces()
    assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))  # no gap, none twice


def test_a_replica_that_lost_the_role_can_journal_nothing(empty_pg: PgConnections) -> None:
    old = PgTxJournal(empty_pg, take_epoch(empty_pg, "old"))
    new = PgTxJournal(empty_pg, take_epoch(empty_pg, "new"))
    assert new.epoch == old.epoch + 1

    def journal() -> list[Any]:
        return [
            *empty_pg.query("SELECT tx_hash, nonce FROM tx_sent ORDER BY nonce"),
            *empty_pg.query("SELECT nonce, done, block_hash FROM tx_marks ORDER BY nonce"),
        ]

    steps = (
        lambda j: j.record(_signed(1, 100, 1), [h(1)]),
        lambda j: j.included(1, 5, "0x" + "00" * 32),
        lambda j: j.done(1),
    )
    for step in steps:
        before = journal()
        with pytest.raises(NotSender):
            step(old)
        assert journal() == before  # refused whole: nothing of it committed
        step(new)
        assert journal() != before


def _sending_rows(db: PgConnections, epoch: int, count: int) -> list[int]:
    with db.write() as conn:
        return [
            conn.execute(
                "INSERT INTO write_queue (key, kind, item, state, epoch, updated_at) "
                "VALUES (?, 'dataset', '{}', 'sending', ?, 0) RETURNING id",
                (f"k{n}", epoch),
            ).fetchone()["id"]
            for n in range(count)
        ]


def test_outcomes_are_written_together_fenced_and_announced(
    empty_pg: PgConnections, pg_url: str
) -> None:
    old = take_epoch(empty_pg, "old")
    stale = _sending_rows(empty_pg, old, 1)  # claimed by a sender that lost the role
    epoch = take_epoch(empty_pg, "new")
    rows = _sending_rows(empty_pg, epoch, 3)
    listener = Listener(pg_url, DONE_CHANNEL)
    try:
        listener.wait(0.01)  # listening from here on
        told: list[Any] = []
        buffer = OutcomeBuffer(answered=told.extend)
        buffer.add(rows[0], epoch, "final", '{"a":1}')
        buffer.add(rows[1], epoch, "failed", '{"b":2}')
        buffer.add(stale[0], old, "final", '{"stale":1}')
        assert buffer.flush(empty_pg)
        assert listener.wait(5)  # the replicas waiting are told, once committed
    finally:
        listener.close()
    states = {
        row["id"]: (row["state"], row["outcome"])
        for row in empty_pg.query("SELECT id, state, outcome FROM write_queue")
    }
    assert states[rows[0]] == ("final", '{"a":1}')
    assert states[rows[1]] == ("failed", '{"b":2}')
    assert states[rows[2]] == ("sending", None)  # no outcome given
    assert states[stale[0]] == ("sending", None)  # its epoch no longer sends: left to the next
    # the sender's own replica is told just the rows committed, to answer them without a read
    assert sorted((r["id"], r["state"], r["outcome"]) for r in told) == [
        (rows[0], "final", '{"a":1}'),
        (rows[1], "failed", '{"b":2}'),
    ]


def test_the_sender_reads_no_outcomes_when_told_of_its_own_commits(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its outcomes are answered as they commit: the notifications of its own commits make no
    reads (only the poll does, every ``poll_interval``: here longer than the test)."""
    reads: list[int] = []
    real_read = SharedWrites._read_outcomes
    monkeypatch.setattr(
        SharedWrites, "_read_outcomes", lambda self, ids: reads.append(1) or real_read(self, ids)
    )
    sender = cluster.replica(poll_interval=120.0)
    cluster.sender()
    for n in range(1, 5):  # one after another: four transactions, four notifications
        assert sender.write(dataset(n)).created
    assert len(reads) <= 1  # at most the one poll since the first request waited


def test_the_sender_answers_its_own_replicas_requests_without_reading_them(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replica holding the sender role answers its own waiting requests from the outcomes
    it commits; the others read theirs (here they cannot: their reads are switched off, so
    theirs wait until the end, when the reads come back)."""
    monkeypatch.setattr(SharedWrites, "_read_outcomes", lambda self, ids: None)
    a, b = cluster.replica(), cluster.replica()
    sender = cluster.sender()
    other = b if sender is a else a
    waiting = other.submit(dataset(2))
    assert isinstance(sender.write(dataset(1)).event, DatasetRegistered)
    _wait_until(
        lambda: (
            cluster.db.query("SELECT state FROM write_queue WHERE key = ?", (h(2),))
            == [{"state": "final"}]
        ),
        "the other replica's write is final",
    )
    time.sleep(0.3)
    assert not waiting.done()
    monkeypatch.undo()
    assert waiting.result(TIMEOUT).created


def test_done_nonces_are_pruned_past_keep_done_every_prune_every(
    empty_pg: PgConnections, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.writes._pg_journal.KEEP_DONE", 2)
    monkeypatch.setattr("ledger.writes._pg_journal.PRUNE_EVERY", 4)
    journal = PgTxJournal(empty_pg, take_epoch(empty_pg, "test"))

    def kept() -> list[int]:
        return [row["nonce"] for row in empty_pg.query("SELECT nonce FROM tx_sent ORDER BY nonce")]

    for nonce in range(1, 8):
        journal.record(_signed(nonce, 100, nonce), [h(nonce)])
        journal.done(nonce)
        if nonce == 3:
            assert kept() == [1, 2, 3]  # no multiple of 4 done yet: nothing pruned
    assert kept() == [2, 3, 4, 5, 6, 7]  # at nonce 4, those below 4 - 2 went
    journal.close()


def test_writes_outcomes_and_errors_round_trip_as_json() -> None:
    items = [
        dataset(1),
        dataset(2, h(1)),
        ModelInput(h(3), (h(1), h(2)), h(4)),
        RevokeInput(h(1), "a reason"),
        RoleInput("0x" + "ab" * 20, False),
    ]
    assert [item_from_json(item_to_json(i)) for i in items] == items
    event = DatasetRegistered("0x" + "11" * 32, 7, 2, h(1), "0x" + "ab" * 20, h(5), 3, h(6), h(7),
                              (h(8),), h(9))  # fmt: skip
    included = Included(event, 1_700_000_000, "0x" + "11" * 32, 7, 90_000)
    back = included_from_json(included_to_json(included), created=False)
    assert back == Included(event, 1_700_000_000, "0x" + "11" * 32, 7, 90_000, created=False)
    error = error_from_json(error_to_json(UnknownDataset("no such dataset", record_hash=h(1))))
    assert isinstance(error, UnknownDataset) and error.context == {"record_hash": h(1)}
    assert str(error) == str(UnknownDataset("no such dataset"))
    assert isinstance(error_from_json('{"type": "Nope", "message": "m", "context": {}}'),
                      TransactionFailed)  # fmt: skip


# -- one conformance suite for both journals ---------------------------------------------------


def _signed(nonce: int, fee: int, tag: int) -> Any:
    from ledger.chain._transactor import SignedTx

    return SignedTx(
        tx={"to": "0x" + "11" * 20, "data": "0x" + f"{tag:02x}" * 4},
        gas=100_000,
        nonce=nonce,
        max_fee=fee,
        priority_fee=fee // 10,
        tx_hash=hash_hex(keccak(bytes([nonce, tag]))),
        raw=bytes([nonce, tag]) * 8,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    if request.param == "sqlite":
        from ledger.writes._journal import TxJournal

        made = TxJournal(tmp_path / "writes.sqlite3")
    else:
        db = request.getfixturevalue("empty_pg")
        made = PgTxJournal(db, take_epoch(db, "test"))
    yield made
    made.close()


@pytest.mark.parametrize("journal", ["sqlite", "postgresql"], indirect=True)
def test_both_journals_keep_the_same_promises(journal: Any) -> None:
    first, bumped, second = _signed(5, 100, 1), _signed(5, 113, 2), _signed(6, 100, 3)
    journal.record(first, [h(1), h(2)])
    journal.record(bumped, [h(1), h(2)])
    journal.record(second, [h(3)])
    entries = journal.entries()
    assert [(e.nonce, [v.tx_hash for v in e.variants], e.keys) for e in entries] == [
        (5, [first.tx_hash, bumped.tx_hash], (h(1), h(2))),
        (6, [second.tx_hash], (h(3),)),
    ]
    assert entries[0].variants[1] == bumped  # the signed bytes come back as they were
    assert journal.newest_at(5) == bumped.tx_hash and journal.newest_at(7) is None
    journal.included(5, 40, "0x" + "ab" * 32)
    assert (journal.entries()[0].block_number, journal.entries()[0].block_hash) == (
        40,
        "0x" + "ab" * 32,
    )
    journal.done(5)
    assert [e.nonce for e in journal.entries()] == [6]
    reopened = journal.reopen(first.tx_hash)  # its block left the chain after it was final
    assert reopened is not None and reopened.nonce == 5 and reopened.block_number is None
    assert journal.reopen(hash_hex(keccak(b"unknown"))) is None
    journal.forget(second.tx_hash)
    assert [e.nonce for e in journal.entries()] == [5]
