"""ledger.writes.anchoring on a real chain (embedded and anvil): the receipt book and the anchorer.

The receipt-book tests are its conformance suite, written once and run on each engine: the
SQLite file (:class:`ReceiptBook`) and PostgreSQL (:class:`PgReceiptBook`, an emptied scratch
database; on the embedded chain only, as the index's suite: the engine is what varies).

Batches form by size, by age, and per model, and the batches due together share one
transaction through the write pipeline; a crash anywhere between planning a batch and
recording it anchors it exactly once; a batch the chain refuses for good is marked failed, and
one it refuses for now (a lost role, a timeout) waits, so no receipt handed out is ever lost.
Background behaviour is observed by polling with generous timeouts, never by timing.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.chain.client import LedgerClient
from ledger.errors import ChainUnavailable, TransactionFailed
from ledger.formats.merkle import verify_proof
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import Receipt, ReceiptDomain, input_hash
from ledger.records import PredictionsAnchored
from ledger.storage import receipt_book
from ledger.storage.pg_receipt_book import PgReceiptBook
from ledger.storage.postgres import PgConnections
from ledger.storage.receipt_book import ReceiptStore
from ledger.writes import anchoring
from ledger.writes.anchoring import Anchorer, ReceiptBook
from ml.hashing import to_hex
from tests.conftest import Deployed

TIMEOUT = 60.0  # seconds to wait for the background thread; only ever reached on failure


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


@dataclass
class Setup:
    deployed: Deployed
    book: ReceiptStore
    path: Path
    signer: ReceiptSigner
    models: tuple[str, str]
    pg: PgConnections | None = None

    def reopen(self) -> None:
        """Close the book and open it again on the same storage, as after a restart."""
        self.book.close()
        self.book = ReceiptBook(self.path) if self.pg is None else PgReceiptBook(self.pg)

    @property
    def client(self) -> LedgerClient:
        return self.deployed.registrar

    def issue(self, n: int, model: str | None = None) -> list[Receipt]:
        rows = [{"x": random.random(), "i": i} for i in range(n)]
        receipts = [
            self.signer.sign(
                model_hash=model or self.models[0], input_hash=input_hash(row), output=row["x"]
            )
            for row in rows
        ]
        self.book.add(receipts, rows)
        return receipts

    def anchorer(
        self,
        *,
        batch_size: int = 1000,
        interval: float = 3600,
        book: ReceiptStore | None = None,
        client: LedgerClient | None = None,
    ) -> Anchorer:
        return Anchorer(
            book or self.book, client or self.client, batch_size=batch_size, interval=interval
        )

    def anchored_on_chain(self) -> list[PredictionsAnchored]:
        return [e for e in self.client.events() if isinstance(e, PredictionsAnchored)]

    def status(self, receipt: Receipt) -> str:
        stored = self.book.get(to_hex(receipt.receipt_id))
        assert stored is not None
        return stored.status


@pytest.fixture(params=["sqlite", "postgres"])
def setup(request: pytest.FixtureRequest, deployed: Deployed, tmp_path: Path) -> Iterator[Setup]:
    pg: PgConnections | None = None
    if request.param == "postgres":
        if "anvil" in request.node.callspec.params.values():
            pytest.skip("the engine is what varies: PostgreSQL runs on the embedded chain only")
        pg = request.getfixturevalue("empty_pg")
    client = deployed.registrar
    rng = random.Random(1)
    dataset = to_hex(rng.randbytes(32))
    client.register_dataset(
        dataset, rows_root=rng.randbytes(32), row_count=1, schema_hash=rng.randbytes(32)
    )
    models = (to_hex(rng.randbytes(32)), to_hex(rng.randbytes(32)))
    for model in models:
        client.register_model(model, datasets=[dataset], metadata_hash=rng.randbytes(32))
    path = tmp_path / "receipts.sqlite3"
    signer = ReceiptSigner(client.account.key, ReceiptDomain(client.chain_id(), client.address))
    made = Setup(
        deployed, ReceiptBook(path) if pg is None else PgReceiptBook(pg), path, signer, models, pg
    )
    yield made
    made.book.close()


sqlite_only = pytest.mark.parametrize("setup", ["sqlite"], indirect=True)


def _assert_anchored_and_provable(setup: Setup, receipts: list[Receipt]) -> None:
    """Each receipt is anchored, its proof leads to its batch's root, and the contract agrees."""
    for receipt in receipts:
        stored = setup.book.get(to_hex(receipt.receipt_id))
        assert stored is not None and stored.status == "anchored", stored
        doc = stored.to_json()
        assert doc["batch_id"] == doc["root"] == stored.batch_id
        assert doc["tx_hash"] and doc["block_number"] is not None
        assert verify_proof(stored.batch_id, stored.leaf, stored.proof)
        assert setup.client.verify_prediction(stored.batch_id, stored.leaf, stored.proof)


# ---------------------------------------------------------------------------------------------
# The receipt book
# ---------------------------------------------------------------------------------------------


def test_receipts_are_durable_and_pending_until_anchored(setup: Setup) -> None:
    receipts = setup.issue(3)
    setup.reopen()  # as after a restart
    assert setup.book.counts() == {"pending": 3, "anchored": 0, "failed": 0}
    stored = setup.book.get("0x" + receipts[0].receipt_id.hex().upper())
    assert stored is not None and stored.receipt == receipts[0]
    assert stored.status == "pending" and stored.input is not None
    doc = stored.to_json()
    assert doc["status"] == "pending"
    assert doc["batch_id"] is None and doc["proof"] is None and doc["leaf"] is None
    assert setup.book.get("0x" + "00" * 32) is None


def test_a_planned_batch_still_reads_pending(setup: Setup) -> None:
    [receipt] = setup.issue(1)
    setup.book.plan(10)
    assert setup.status(receipt) == "pending"
    assert setup.book.counts()["pending"] == 1
    stored = setup.book.get(to_hex(receipt.receipt_id))
    assert stored is not None and stored.batch_id is not None  # planned, not yet sent...
    assert stored.to_json()["proof"] is None  # ...so no proof is shown


@sqlite_only
def test_the_book_keeps_its_on_disk_format_and_durability(setup: Setup) -> None:
    row = {"x": 0.5, "é": "ü", "i": 1}
    receipt = setup.signer.sign(model_hash=setup.models[0], input_hash=input_hash(row), output=2)
    setup.book.add([receipt], [row])
    assert isinstance(setup.book, ReceiptBook)
    assert setup.book._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    with closing(sqlite3.connect(setup.path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {
            table: [column[1] for column in db.execute(f"PRAGMA table_info({table})")]
            for table in ("receipts", "batches", "models")
        }
        stored = db.execute("SELECT receipt_id, model_hash, body, input FROM receipts").fetchone()
    assert tables == {
        "receipts": [
            "seq",
            "receipt_id",
            "model_hash",
            "created_at",
            "body",
            "input",
            "batch_root",
            "leaf",
            "proof",
        ],
        "batches": [
            "root",
            "model_hash",
            "count",
            "state",
            "tx_hash",
            "block_number",
            "error",
            "planned_at",
            "first_seq",
            "last_seq",
            "leaves",
        ],
        "models": ["model_hash", "planned_through"],
    }
    assert stored == (
        "0x" + receipt.receipt_id.hex(),
        setup.models[0],
        receipt.to_json(),
        '{"i":1,"x":0.5,"\\u00e9":"\\u00fc"}',  # sorted, compact, ASCII-escaped
    )


_PROTOCOL_MEMBERS = frozenset(
    name
    for name in vars(ReceiptStore)
    if not name.startswith("_") and callable(vars(ReceiptStore)[name])
)


class _OnlyTheProtocol:
    """A receipt book that lets through the ReceiptStore members and nothing else."""

    def __init__(self, book: ReceiptStore) -> None:
        self._book = book
        self.used: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        if name not in _PROTOCOL_MEMBERS:
            raise AttributeError(f"{name} is not part of ReceiptStore")
        self.used.add(name)
        return getattr(self._book, name)


def test_the_book_is_a_receipt_store_and_the_names_stay_importable(setup: Setup) -> None:
    assert isinstance(setup.book, ReceiptStore)
    assert {
        "add",
        "add_issued",
        "get",
        "counts",
        "pending_count",
        "oldest_pending_at",
        "plan",
        "planned",
        "mark_anchored",
        "mark_failed",
        "close",
    } == _PROTOCOL_MEMBERS
    assert anchoring.ReceiptBook is receipt_book.ReceiptBook
    assert anchoring.StoredReceipt is receipt_book.StoredReceipt


def test_the_anchorer_needs_only_the_receipt_store_protocol(setup: Setup) -> None:
    store = _OnlyTheProtocol(setup.book)
    receipts = setup.issue(5)
    results = setup.anchorer(batch_size=2, book=store).flush()  # type: ignore[arg-type]
    assert [r.count for r in results] == [2, 2, 1]
    _assert_anchored_and_provable(setup, receipts)
    assert store.used == {"plan", "planned", "mark_anchored"}
    # The thread, due by age, also asks how many are pending and since when. A member outside
    # the Protocol would raise in the thread, and the receipt would never be anchored.
    setup.issue(1)
    anchorer = setup.anchorer(batch_size=1000, interval=0.05, book=store)  # type: ignore[arg-type]
    anchorer.start()
    try:
        _wait_until(lambda: setup.book.counts()["anchored"] == 6, "the thread anchors it")
    finally:
        anchorer.stop()
    assert store.used == {"plan", "planned", "mark_anchored", "pending_count", "oldest_pending_at"}


# ---------------------------------------------------------------------------------------------
# Flushing
# ---------------------------------------------------------------------------------------------


def test_flush_anchors_every_pending_receipt_in_batches_of_n(setup: Setup) -> None:
    receipts = setup.issue(23)
    results = setup.anchorer(batch_size=10).flush()
    assert [r.count for r in results] == [10, 10, 3]
    assert all(r.error is None and r.tx_hash for r in results)
    on_chain = {e.root: e for e in setup.anchored_on_chain()}
    assert sorted(on_chain) == sorted(r.root for r in results)
    for r in results:
        event = on_chain[r.root]
        assert (event.model_hash, event.count, event.tx_hash) == (r.model_hash, r.count, r.tx_hash)
        assert event.registrant == setup.client.account.address
    _assert_anchored_and_provable(setup, receipts)
    assert setup.book.counts() == {"pending": 0, "anchored": 23, "failed": 0}
    assert setup.anchorer().flush() == []  # nothing left: nothing sent
    assert len(setup.anchored_on_chain()) == 3


def test_receipts_of_two_models_go_to_two_batches(setup: Setup) -> None:
    first = setup.issue(3, setup.models[0])
    second = setup.issue(2, setup.models[1])
    first += setup.issue(1, setup.models[0])
    results = setup.anchorer().flush()
    assert sorted((r.model_hash, r.count) for r in results) == sorted(
        [(setup.models[0], 4), (setup.models[1], 2)]
    )
    by_model = {e.model_hash: e.root for e in setup.anchored_on_chain()}
    for model, receipts in ((setup.models[0], first), (setup.models[1], second)):
        for receipt in receipts:
            stored = setup.book.get(to_hex(receipt.receipt_id))
            assert stored is not None and stored.batch_id == by_model[model]
    _assert_anchored_and_provable(setup, first + second)


def test_the_batches_of_several_models_share_one_transaction(setup: Setup) -> None:
    setup.issue(3, setup.models[0])
    setup.issue(2, setup.models[1])
    nonce = setup.client.transactor.confirmed_nonce()
    results = setup.anchorer().flush()
    assert len(results) == 2 and all(r.error is None for r in results)
    assert len({r.tx_hash for r in results}) == 1  # one anchorPredictionBatches for both
    assert setup.client.transactor.confirmed_nonce() == nonce + 1
    assert sorted(e.model_hash for e in setup.anchored_on_chain()) == sorted(setup.models)


def test_a_batch_whose_model_was_revoked_before_anchoring_fails(setup: Setup) -> None:
    doomed = setup.issue(2, setup.models[0])
    fine = setup.issue(2, setup.models[1])
    setup.deployed.admin.revoke(setup.models[0], "withdrawn")
    results = {r.model_hash: r for r in setup.anchorer().flush()}

    failed = results[setup.models[0]]
    assert failed.tx_hash is None and failed.error and "revoked" in failed.error
    for receipt in doomed:
        stored = setup.book.get(to_hex(receipt.receipt_id))
        assert stored is not None and stored.status == "failed"
        assert stored.error == failed.error and stored.to_json()["error"] == failed.error
        assert stored.to_json()["proof"] is None
    assert results[setup.models[1]].error is None
    _assert_anchored_and_provable(setup, fine)
    assert setup.book.counts() == {"pending": 0, "anchored": 2, "failed": 2}
    # A failed batch is not retried.
    assert setup.anchorer().flush() == []
    assert [e.model_hash for e in setup.anchored_on_chain()] == [setup.models[1]]


# ---------------------------------------------------------------------------------------------
# Crashes between plan, send and mark
# ---------------------------------------------------------------------------------------------


def test_a_crash_between_plan_and_send_still_anchors_once(setup: Setup) -> None:
    receipts = setup.issue(5)
    [root] = setup.book.plan(1000)
    setup.reopen()  # the process dies here
    assert setup.book.planned() == [(root, setup.models[0], 5)]

    [result] = setup.anchorer().flush()
    assert result.root == root and result.error is None
    _assert_anchored_and_provable(setup, receipts)
    assert setup.anchorer().flush() == []
    assert [e.root for e in setup.anchored_on_chain()] == [root]


def test_a_restarted_anchorer_thread_resumes_planned_batches_at_once(setup: Setup) -> None:
    receipts = setup.issue(2)
    setup.book.plan(1000)
    anchorer = setup.anchorer(interval=3600)  # neither the size nor the age is due
    anchorer.start()
    try:
        _wait_until(lambda: setup.book.counts()["anchored"] == 2, "the planned batch is anchored")
    finally:
        anchorer.stop()
    _assert_anchored_and_provable(setup, receipts)


def test_a_planned_batch_already_on_chain_is_recorded_not_resent(setup: Setup) -> None:
    receipts = setup.issue(4)
    [root] = setup.book.plan(1000)
    sent = setup.client.anchor_predictions(setup.models[0], root, 4)  # then the process died
    w3, address = setup.client.backend.w3, setup.client.account.address
    nonce = w3.eth.get_transaction_count(address)
    [result] = setup.anchorer().flush()
    assert w3.eth.get_transaction_count(address) == nonce  # nothing sent, not even a revert
    assert (result.tx_hash, result.block_number, result.error) == (
        sent.tx_hash,
        sent.block_number,
        None,
    )
    assert [e.tx_hash for e in setup.anchored_on_chain()] == [sent.tx_hash]
    _assert_anchored_and_provable(setup, receipts)
    stored = setup.book.get(to_hex(receipts[0].receipt_id))
    assert stored is not None and stored.tx_hash == sent.tx_hash


def test_a_batch_sent_before_a_crash_is_recorded_even_if_its_model_was_revoked_since(
    setup: Setup,
) -> None:
    """The chain has the batch: re-sending it fails on the revoked model, but it is anchored."""
    receipts = setup.issue(3)
    [root] = setup.book.plan(1000)
    sent = setup.client.anchor_predictions(setup.models[0], root, 3)
    setup.deployed.admin.revoke(setup.models[0], "withdrawn after the batch was anchored")
    [result] = setup.anchorer().flush()
    assert result.error is None and result.tx_hash == sent.tx_hash
    _assert_anchored_and_provable(setup, receipts)


def test_a_root_anchored_for_another_model_is_not_taken_as_ours(setup: Setup) -> None:
    setup.issue(2, setup.models[0])
    [root] = setup.book.plan(1000)
    setup.client.anchor_predictions(setup.models[1], root, 2)
    [result] = setup.anchorer().flush()
    assert result.error is not None and setup.models[1] in result.error
    assert setup.book.counts()["failed"] == 2


# ---------------------------------------------------------------------------------------------
# Refusals that may pass: nothing is given up
# ---------------------------------------------------------------------------------------------


def test_an_anchorer_that_lost_its_role_keeps_the_batch_until_the_role_is_back(
    setup: Setup,
) -> None:
    receipts = setup.issue(3)
    address = setup.client.account.address
    setup.deployed.admin.revoke_registrar(address)
    [result] = setup.anchorer().flush()
    assert result.error is not None and result.tx_hash is None
    assert setup.book.counts() == {"pending": 3, "anchored": 0, "failed": 0}
    assert all(setup.status(r) == "pending" for r in receipts)

    setup.deployed.admin.grant_registrar(address)
    [result] = setup.anchorer().flush()
    assert result.error is None
    _assert_anchored_and_provable(setup, receipts)


def test_a_send_that_times_out_keeps_the_batch_for_the_next_round(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipts = setup.issue(2)
    anchorer = setup.anchorer()

    def no_receipt(items: Any) -> Any:
        return [TransactionFailed("no receipt for 0xabc within 120 s") for _ in items]

    monkeypatch.setattr(anchorer.writes, "write_many", no_receipt)
    [result] = anchorer.flush()
    assert result.error is not None and "no receipt" in result.error
    assert setup.book.counts()["pending"] == 2
    monkeypatch.undo()
    [result] = anchorer.flush()
    assert result.error is None
    _assert_anchored_and_provable(setup, receipts)


def test_an_unreachable_chain_raises_and_keeps_everything_pending(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipts = setup.issue(2)
    anchorer = setup.anchorer()

    def down(items: Any) -> Any:
        return [ChainUnavailable("connection refused") for _ in items]

    monkeypatch.setattr(anchorer.writes, "write_many", down)
    with pytest.raises(ChainUnavailable):
        anchorer.flush()
    assert setup.book.counts()["pending"] == 2
    monkeypatch.undo()
    anchorer.flush()
    _assert_anchored_and_provable(setup, receipts)


# ---------------------------------------------------------------------------------------------
# The background thread: by size, by age
# ---------------------------------------------------------------------------------------------


def test_the_thread_anchors_when_n_are_pending(setup: Setup) -> None:
    anchorer = setup.anchorer(batch_size=5, interval=3600)
    anchorer.start()
    try:
        first = setup.issue(4)
        anchorer.notify()
        second = setup.issue(1)
        anchorer.notify()
        _wait_until(lambda: setup.book.counts()["anchored"] == 5, "five receipts are anchored")
    finally:
        anchorer.stop()
    # Four were not enough on their own: the five went out as one batch.
    [event] = setup.anchored_on_chain()
    assert event.count == 5
    _assert_anchored_and_provable(setup, first + second)


def test_announced_receipts_wake_the_thread_only_once_a_batch_is_due(setup: Setup) -> None:
    """notify(n) counts what requests announce: below the batch size the thread is not woken
    (no count of the book per request); the announcement that reaches it wakes the thread."""
    anchorer = setup.anchorer(batch_size=5, interval=3600)
    counted = []
    pending_count = setup.book.pending_count

    def counting() -> int:
        pending = pending_count()
        counted.append(1)  # after the count: a receipt issued once this is seen is not in it
        return pending

    setup.book.pending_count = counting  # type: ignore[method-assign]
    anchorer.start()
    try:
        _wait_until(lambda: len(counted) == 1, "the thread's first look at the book")
        setup.issue(2)
        anchorer.notify(2)
        setup.issue(2)
        anchorer.notify(2)
        time.sleep(0.3)
        assert len(counted) == 1 and setup.book.counts()["pending"] == 4  # not woken
        setup.issue(1)
        anchorer.notify(1)
        _wait_until(lambda: setup.book.counts()["anchored"] == 5, "five receipts are anchored")
    finally:
        anchorer.stop()
    [event] = setup.anchored_on_chain()
    assert event.count == 5


def test_rounds_started_by_size_wait_for_the_gap_and_then_share_one_transaction(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy service: the first full batch goes at once; batches that fill before the gap
    since that round has passed wait (no transaction per batch), and one round then anchors
    them all in one transaction."""
    monkeypatch.setattr(anchoring, "ROUND_GAP", 1000.0)  # longer than the test
    anchorer = setup.anchorer(batch_size=2, interval=3600)
    anchorer.start()
    try:
        first = setup.issue(2)
        anchorer.notify(2)
        _wait_until(lambda: setup.book.counts()["anchored"] == 2, "the first batch is anchored")
        rest = setup.issue(2)
        anchorer.notify(2)
        rest += setup.issue(2)
        anchorer.notify(2)
        time.sleep(0.3)
        assert setup.book.counts() == {"pending": 4, "anchored": 2, "failed": 0}  # the gap
        results = anchorer.flush()  # what the thread does once the gap has passed
    finally:
        anchorer.stop()
    assert [r.count for r in results] == [2, 2] and results[0].tx_hash == results[1].tx_hash
    events = setup.anchored_on_chain()
    assert [e.count for e in events] == [2, 2, 2]
    assert events[0].tx_hash != events[1].tx_hash == events[2].tx_hash
    _assert_anchored_and_provable(setup, first + rest)


def test_the_thread_anchors_after_the_interval(setup: Setup) -> None:
    anchorer = setup.anchorer(batch_size=1000, interval=0.2)
    anchorer.start()
    try:
        receipts = setup.issue(2)  # no notify: the age alone must trigger it
        _wait_until(lambda: setup.book.counts()["anchored"] == 2, "the old receipts are anchored")
    finally:
        anchorer.stop()
    _assert_anchored_and_provable(setup, receipts)


def test_the_thread_plans_and_anchors_only_while_this_replica_may(setup: Setup) -> None:
    """With a shared book only the sender replica's thread anchors (``may_anchor``): another
    replica's thread leaves every receipt pending, unplanned, until the role comes to it."""
    may = threading.Event()
    anchorer = Anchorer(
        setup.book, setup.client, batch_size=1, interval=0.05, may_anchor=may.is_set
    )
    anchorer.start()
    try:
        receipts = setup.issue(2)
        anchorer.notify()
        time.sleep(0.3)  # several rounds of the thread, due by size and by age
        assert setup.book.planned() == [] and setup.book.pending_count() == 2
        may.set()  # the role came to this replica
        _wait_until(lambda: setup.book.counts()["anchored"] == 2, "the receipts are anchored")
    finally:
        anchorer.stop()
    _assert_anchored_and_provable(setup, receipts)


def test_the_thread_backs_off_while_the_chain_refuses_and_anchors_once_it_accepts(
    setup: Setup,
) -> None:
    address = setup.client.account.address
    setup.deployed.admin.revoke_registrar(address)
    receipts = setup.issue(2)
    anchorer = setup.anchorer(batch_size=1, interval=0.1)
    attempts = 0
    send = anchorer.writes.write_many

    def counting(items: Any) -> Any:
        nonlocal attempts
        attempts += 1
        return send(items)

    anchorer.writes.write_many = counting  # type: ignore[method-assign]
    anchorer.start()
    try:
        _wait_until(lambda: attempts >= 2, "the anchorer retries")
        assert setup.book.counts()["failed"] == 0
        setup.deployed.admin.grant_registrar(address)
        _wait_until(lambda: setup.book.counts()["anchored"] == 2, "the receipts are anchored")
    finally:
        anchorer.stop()
    _assert_anchored_and_provable(setup, receipts)


def test_concurrent_writers_and_the_thread_anchor_every_receipt_exactly_once(
    setup: Setup,
) -> None:
    anchorer = setup.anchorer(batch_size=7, interval=0.05)
    issued: list[Receipt] = []
    lock = threading.Lock()

    def writer(model: str) -> None:
        for _ in range(10):
            batch = setup.issue(3, model)
            anchorer.notify()
            with lock:
                issued.extend(batch)

    anchorer.start()
    try:
        threads = [threading.Thread(target=writer, args=(m,)) for m in setup.models * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _wait_until(lambda: setup.book.counts()["anchored"] == 120, "all 120 are anchored")
    finally:
        anchorer.stop()
    events = setup.anchored_on_chain()
    assert sum(e.count for e in events) == 120
    assert len({e.root for e in events}) == len(events)
    _assert_anchored_and_provable(setup, issued)
    batch_of = {r.receipt_id: setup.book.get(to_hex(r.receipt_id)) for r in issued}
    for event in events:
        members = [r for r in issued if batch_of[r.receipt_id].batch_id == event.root]  # type: ignore[union-attr]
        assert len(members) == event.count
        assert {to_hex(r.model_hash) for r in members} == {event.model_hash}
