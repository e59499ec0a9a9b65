"""Time in verification (embedded chain and anvil): a receipt is issued after its model was
registered and before its batch was anchored, within ``clock_tolerance`` seconds; a model is
registered after its training data.

Block times and ``issued_at`` are whole seconds: a receipt issued in the second its model was
registered is on time. A back-dated receipt, signed by the service's own key, is still invalid,
on exactly the check that is about it.
"""

from __future__ import annotations

import time

import pytest

from ledger.records import ChainRecord
from ledger.verify import ChainFacts, Report, verify_model, verify_receipt
from tests.ledger._world import World, world

__all__ = ["world"]  # the fixture, from tests.ledger._world

HOUR = 3600


def _verify(world: World, receipt: object, **kwargs: object) -> Report:
    return world.verify(receipt, **kwargs)  # type: ignore[arg-type]


def test_a_receipt_issued_in_its_models_registration_second_is_on_time(world: World) -> None:
    registered = world.registered_at(world.model)
    [receipt, *_] = world.issue(issued_at=registered)
    world.anchor()
    report = _verify(world, receipt, clock_tolerance=0)
    assert report.verdict == "valid", report.to_json()
    assert report.check("issued_after_model").ok is True
    assert report.check("issued_before_anchoring").ok is True
    assert report.check("datasets_before_model").ok is True


@pytest.mark.parametrize("anchored", [False, True], ids=["pending", "anchored"])
def test_a_back_dated_receipt_fails_issued_after_model(world: World, anchored: bool) -> None:
    registered = world.registered_at(world.model)
    [receipt, *_] = world.issue(issued_at=registered - HOUR)
    if anchored:
        world.anchor()
    report = _verify(world, receipt)
    assert report.verdict == "invalid"
    assert report.failed == ["issued_after_model"], report.to_json()
    assert "back-dated" in report.check("issued_after_model").detail
    assert report.check("signature").ok is True  # the service's own key signed it


def test_a_receipt_dated_after_its_batch_was_anchored_fails_issued_before_anchoring(
    world: World,
) -> None:
    [receipt, *_] = world.issue(issued_at=int(time.time()) + HOUR)
    world.anchor()
    report = _verify(world, receipt)
    assert report.failed == ["issued_before_anchoring"], report.to_json()
    # Not anchored yet, the same receipt cannot be judged on that count.
    [later, *_] = world.issue([{"x1": 3, "x2": 3}], issued_at=int(time.time()) + HOUR)
    assert _verify(world, later).check("issued_before_anchoring").ok is None


def test_the_clock_tolerance_allows_a_little_skew_and_no_more(world: World) -> None:
    registered = world.registered_at(world.model)
    [receipt, *_] = world.issue(issued_at=registered - 30)
    world.anchor()
    assert _verify(world, receipt, clock_tolerance=60).verdict == "valid"
    report = _verify(world, receipt, clock_tolerance=29)
    assert report.failed == ["issued_after_model"]


def test_a_model_registered_before_its_training_data_is_reported(world: World) -> None:
    """The contract refuses such a model, so only a node's doctored answers can show one: the
    check is there for them."""
    facts = world.facts()
    honest = facts.reader.records_and_roles
    model_time = world.registered_at(world.model)

    def doctored(hashes, accounts, block="latest"):  # type: ignore[no-untyped-def]
        records, roles = honest(hashes, accounts, block)
        return [
            ChainRecord(r.record_hash, r.kind, r.revoked, model_time + 5, r.registrant)
            if r is not None and r.record_hash == world.derived
            else r
            for r in records
        ], roles

    facts.reader.records_and_roles = doctored  # type: ignore[method-assign]
    report = verify_model(world.model, facts)
    assert report.failed == ["datasets_before_model"], report.to_json()
    assert world.derived in report.check("datasets_before_model").detail

    [receipt, *_] = world.issue()
    receipt_report = verify_receipt(receipt, facts, anchoring=None)
    assert receipt_report.failed == ["datasets_before_model"]


def test_an_unregistered_model_leaves_the_time_checks_undecided(world: World) -> None:
    from tests.ledger._world import sha

    [receipt, *_] = world.issue(model=sha(b"no such model"))
    report = verify_receipt(receipt, ChainFacts.for_client(world.client), anchoring=None)
    assert report.failed == ["model_registered"]
    assert report.check("issued_after_model").ok is None
