"""ledger.reading.chain_facts on both backends: each chain fact read once, state read once per head,
nothing cached that a reorg could have changed, and roles read where a batch was anchored."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ledger.reading._jsonrpc import NodeError
from ledger.records import ChainRecord
from ledger.verify import ChainFacts, verify_receipt, verify_receipts
from ledger.verify import ReceiptEvidence as Evidence
from tests.ledger._world import World, world

__all__ = ["world"]  # the fixture, from tests.ledger._world


class _Counting:
    """Counts the transport's round trips by kind."""

    def __init__(self, facts: ChainFacts) -> None:
        self.calls: list[str] = []
        transport = facts.reader.transport
        for name in ("call_many", "logs", "block"):
            original = getattr(transport, name)

            def counted(*args: Any, _name: str = name, _original: Any = original, **kw: Any):
                self.calls.append(_name)
                return _original(*args, **kw)

            setattr(transport, name, counted)

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


def _anchored(world: World, rows: int = 3) -> list[Evidence]:
    receipts = world.issue([{"x1": i, "x2": i} for i in range(rows)])
    world.anchor()
    return [Evidence(r, world.anchoring(r)) for r in receipts]


def test_a_warm_verification_reads_the_head_and_nothing_else(world: World) -> None:
    items = _anchored(world)
    facts = world.facts()
    counting = _Counting(facts)
    first = verify_receipts(items[:1], facts)[0]
    assert first.verdict == "valid", first.to_json()
    assert "logs" in counting.take()  # cold: events read

    # Another receipt of the same batch, same head: the head block and nothing more.
    second = verify_receipt(items[1].receipt, facts, anchoring=items[1].anchoring)
    assert second.verdict == "valid"
    assert counting.take() == ["block"]

    # A new head (or a forgotten one): the head, then every state in one round trip.
    facts.forget_state()
    assert verify_receipt(items[2].receipt, facts, anchoring=items[2].anchoring).verdict == "valid"
    assert counting.take() == ["block", "call_many"]


def test_a_bulk_run_reads_each_fact_once(world: World) -> None:
    items = _anchored(world, rows=20)
    facts = world.facts()
    found: list[tuple[str, str]] = []
    original = facts.reader.find
    facts.reader.find = lambda e, k, s, t: found.append((e, k)) or original(e, k, s, t)  # type: ignore[method-assign]
    reports = verify_receipts(items, facts)
    assert [r.verdict for r in reports] == ["valid"] * 20
    assert len(found) == len(set(found)) == 4  # batch, model, two datasets: once each
    # The shared checks are the same objects in every report.
    assert all(r.check("training_data") is reports[0].check("training_data") for r in reports)


def test_a_fact_whose_record_changed_under_it_is_read_again(world: World) -> None:
    """A reorg that re-registers a record elsewhere shows as another registrant or time in its
    state; the cached event is then dropped, never served."""
    items = _anchored(world, rows=1)
    facts = world.facts()
    assert verify_receipts(items, facts)[0].verdict == "valid"
    honest = facts.reader.records_and_roles
    shifted = {world.model}

    def reorganised(hashes: Any, accounts: Any, block: Any = "latest") -> Any:
        records, roles = honest(hashes, accounts, block)
        return [
            replace(r, registered_at=r.registered_at + 1) if r and r.record_hash in shifted else r
            for r in records
        ], roles

    facts.reader.records_and_roles = reorganised  # type: ignore[method-assign]
    facts.forget_state()
    counting = _Counting(facts)
    assert verify_receipts(items, facts)[0].verdict == "valid"
    assert "logs" in counting.take()  # the model's registration was read again


def test_facts_of_blocks_not_yet_final_are_not_kept(world: World) -> None:
    items = _anchored(world, rows=1)
    facts = world.facts()
    facts.confirmations = 10_000  # nothing on this chain is final yet
    verify_receipts(items, facts)
    counting = _Counting(facts)
    verify_receipts(items, facts)
    assert "logs" in counting.take()


def test_a_role_is_read_where_the_batch_was_anchored_or_from_history(world: World) -> None:
    items = _anchored(world, rows=1)
    facts = world.facts()
    history_reads: list[int] = []
    original_history = facts.history
    facts.history = lambda a, head, **kw: (
        history_reads.append(head) or original_history(a, head, **kw)
    )  # type: ignore[method-assign]
    assert verify_receipts(items, facts)[0].check("signer_authorized").ok is True
    assert history_reads == []  # a state read and one block's logs did

    # A node that keeps no old state: the role's history answers instead.
    pruned = world.facts()

    def no_old_state(account: str, block: Any = "latest") -> bool:
        raise NodeError("missing trie node")

    pruned.reader.has_role = no_old_state  # type: ignore[method-assign]
    report = verify_receipts(items, pruned)[0]
    assert report.check("signer_authorized").ok is True, report.to_json()


@pytest.mark.parametrize("after_the_grant", [True, False])
def test_role_changes_in_the_anchoring_block_count_only_before_the_anchoring(
    world: World, after_the_grant: bool
) -> None:
    """With several writes per block, a change logged after the anchoring in the same block
    is later than it (position = block, log index)."""
    from ledger.reading.chain_facts import Located
    from ledger.records import PredictionsAnchored

    facts = world.facts()
    signer = world.registrar_account.address
    block, log_index, granted = world.client.registrar_history(signer)[-1]
    assert granted
    anchoring = PredictionsAnchored(
        tx_hash="0x" + "00" * 32,
        block_number=block,
        log_index=log_index + (1 if after_the_grant else -1),
        root="0x" + "11" * 32,
        model_hash="0x" + "22" * 32,
        registrant=signer,
        count=1,
    )
    snapshot = facts.snapshot()
    assert facts.role_at(signer, Located(anchoring), snapshot.head) is after_the_grant
    assert isinstance(snapshot.record(world.model), ChainRecord)
