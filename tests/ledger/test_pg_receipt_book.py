"""The PostgreSQL receipt book as several replicas use it: each replica its own pool (as its
own process has), one database. The states and guarantees common to both engines are checked by
the conformance suite in ``test_anchoring.py``; these are the cases only sharing brings:

* a receipt issued through one replica is read (and its batch exported) through another;
* an insert numbered before a plan but committed after it is planned in the next batch, not
  skipped (``seq`` comes from a sequence, and commits may land out of order);
* two replicas planning at once (a sender role changing hands) plan each receipt exactly once;
* the database away is ``StoreUnavailable`` (503), with nothing written.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ledger.chain.devnode import free_port
from ledger.formats.merkle import verify_proof
from ledger.formats.receipt_requests import IssuedReceipt
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import ReceiptDomain
from ledger.storage.pg_receipt_book import PgReceiptBook
from ledger.storage.postgres import PgConnections, StoreUnavailable

SIGNER = ReceiptSigner(b"\x09" * 32, ReceiptDomain(1, "0x" + "33" * 20))
MODEL = b"\x04" * 32


def _issued(n: int, k: int) -> list[IssuedReceipt]:
    signed = SIGNER.sign_request(
        model_hash=MODEL,
        input_hashes=[bytes([k % 256, i]) * 16 for i in range(n)],
        outputs=[1.0] * n,
    )
    return signed.issued([f'{{"k":{k},"i":{i}}}' for i in range(n)])


@pytest.fixture
def replicas(empty_pg: PgConnections) -> Iterator[tuple[PgReceiptBook, PgReceiptBook]]:
    """Two replicas' books: two pools on the session's emptied database."""
    pools = [PgConnections(empty_pg.url, max_size=3) for _ in range(2)]
    yield PgReceiptBook(pools[0]), PgReceiptBook(pools[1])
    for pool in pools:
        pool.close()


def test_a_receipt_issued_through_one_replica_reads_through_another(
    replicas: tuple[PgReceiptBook, PgReceiptBook],
) -> None:
    one, two = replicas
    items = _issued(5, 1)
    one.add_issued(items)
    stored = two.get(items[2].receipt_id)
    assert stored is not None and stored.status == "pending" and stored.input == {"k": 1, "i": 2}
    assert two.pending_count() == 5 and two.oldest_pending_at() is not None
    [root] = two.plan(100)  # the sender replica plans and marks
    two.mark_anchored(root, "0x" + "ab" * 32, 7)
    for item in items:
        stored = one.get(item.receipt_id)
        assert stored is not None and stored.status == "anchored" and stored.batch_id == root
        assert stored.block_number == 7 and verify_proof(root, stored.leaf, list(stored.proof))
    assert one.batch_count(root) == 5
    documents = one.batch_documents(root, 1, 3)
    assert [d["receipt_id"] for d in documents] == [i.receipt_id for i in items[1:4]]
    assert all(verify_proof(root, d["leaf"], d["proof"]) for d in documents)
    assert one.counts() == {"pending": 0, "anchored": 5, "failed": 0}


def test_an_insert_committed_after_a_later_one_is_planned_not_skipped(
    replicas: tuple[PgReceiptBook, PgReceiptBook], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica one numbers its receipt first but commits last; replica two's receipt, numbered
    after it, is committed meanwhile, and a plan starts: the plan waits for one's commit and
    takes both, so nothing is left below ``planned_through``."""
    one, two = replicas
    one.add_issued(_issued(1, 0))  # the model's row exists, as after its first receipt
    two.plan(100)
    inserted, release = threading.Event(), threading.Event()
    write = one._db.write

    @contextmanager
    def held_before_commit(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with write(*args, **kwargs) as conn:
            yield conn
            inserted.set()  # the rows are in, numbered, not committed
            release.wait(30)

    monkeypatch.setattr(one._db, "write", held_before_commit)
    early, late = _issued(1, 1), _issued(1, 2)
    first = threading.Thread(target=one.add_issued, args=(early,))
    first.start()
    assert inserted.wait(30)
    two.add_issued(late)  # numbered after early, committed before it
    assert two.get(late[0].receipt_id) is not None and two.get(early[0].receipt_id) is None
    roots: list[str] = []
    planner = threading.Thread(target=lambda: roots.extend(two.plan(100)))
    planner.start()
    planner.join(0.5)  # had it not waited for the earlier insert, it would have planned by now
    release.set()
    first.join(30)
    planner.join(30)
    assert len(roots) == 1 and two.batch_count(roots[0]) == 2
    assert two.counts() == {"pending": 3, "anchored": 0, "failed": 0}  # planned, not anchored
    assert two.pending_count() == 0 and two.plan(100) == []
    for item in early + late:
        stored = two.get(item.receipt_id)
        assert stored is not None and stored.batch_id == roots[0]


def test_two_replicas_planning_while_both_issue_plan_each_receipt_once(
    replicas: tuple[PgReceiptBook, PgReceiptBook],
) -> None:
    one, two = replicas
    issued: list[IssuedReceipt] = []
    done = threading.Event()

    def issue(book: PgReceiptBook, base: int) -> None:
        for k in range(base, base + 20):
            items = _issued(3, k)
            book.add_issued(items)
            issued.extend(items)

    def plan(book: PgReceiptBook) -> None:
        while not done.is_set():
            book.plan(7)

    writers = [threading.Thread(target=issue, args=(b, 20 * n)) for n, b in enumerate(replicas)]
    planners = [threading.Thread(target=plan, args=(b,)) for b in replicas]
    for thread in writers + planners:
        thread.start()
    for thread in writers:
        thread.join(60)
    done.set()
    for thread in planners:
        thread.join(60)
    one.plan(7)
    planned = two.planned()
    assert sum(count for _, _, count in planned) == len(issued) == 120
    members: dict[str, int] = {}
    for item in issued:
        stored = one.get(item.receipt_id)
        assert stored is not None and stored.batch_id is not None
        members[stored.batch_id] = members.get(stored.batch_id, 0) + 1
    assert members == {root: count for root, _, count in planned}


def test_a_database_away_is_store_unavailable_and_nothing_is_written(
    empty_pg: PgConnections,
) -> None:
    """A request's receipts are refused with the one "retry later" of every shared store (the
    service answers 503 ``store-unavailable``), never half written."""
    away = PgConnections(f"postgresql://postgres@127.0.0.1:{free_port()}/none", timeout=1)
    try:
        book = PgReceiptBook(away)
        with pytest.raises(StoreUnavailable):
            book.add_issued(_issued(2, 1))
        with pytest.raises(StoreUnavailable):
            book.get("0x" + "00" * 32)
    finally:
        away.close()
    assert PgReceiptBook(empty_pg).counts() == {"pending": 0, "anchored": 0, "failed": 0}
