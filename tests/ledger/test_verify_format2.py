"""Verification of format-2 receipts against the chain, beside format 1 in the same batches.

A request's receipts (one signature over their root) are anchored by the anchorer from the
leaves the issuing path stored; each verifies alone and in a bulk run, and each tampering fails
exactly the checks it must (``tests/ledger/test_verify.py`` is the same page for format 1, which
keeps verifying: a batch here holds both formats).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.formats.receipts import input_hash
from tests.conftest import Deployed
from tests.ledger._world import ROWS, World, make_world, output_of
from tests.ledger.test_verify import ALL_RECEIPT_CHECKS

MORE_ROWS = [*ROWS, {"x1": 7, "x2": 8}, {"x1": 9, "x2": 10}]


@pytest.fixture
def world(deployed: Deployed, tmp_path: Path) -> Iterator[World]:
    yield from make_world(deployed, tmp_path, "single")


@pytest.fixture(params=["single", "bulk"])
def any_world(
    request: pytest.FixtureRequest, deployed: Deployed, tmp_path: Path
) -> Iterator[World]:
    """Verified alone, and in a bulk run (where a request's receipts share one recovery)."""
    yield from make_world(deployed, tmp_path, request.param)


def test_format_2_and_format_1_receipts_in_one_batch_are_valid(any_world: World) -> None:
    world = any_world
    newer = world.issue(MORE_ROWS, receipt_format=2)
    older = world.issue(ROWS[:1], receipt_format=1)
    assert {r.format for r in newer} == {2} and older[0].format == 1
    pending = world.verify(newer[1])
    assert pending.verdict == "pending" and pending.check("signature").ok is True
    world.anchor()
    batch = {world.book.get("0x" + r.receipt_id.hex()).batch_id for r in [*newer, *older]}
    assert len(batch) == 1  # one batch, both formats
    for receipt in [*newer, *older]:
        report = world.verify(receipt)
        assert report.verdict == "valid", report.to_json()
        assert [c.name for c in report.checks] == ALL_RECEIPT_CHECKS
    with_input = world.verify(newer[0], input_row=MORE_ROWS[0], rerun=output_of)
    assert with_input.verdict == "valid", with_input.to_json()


@pytest.mark.parametrize("anchored", [False, True], ids=["pending", "anchored"])
def test_an_altered_output_fails_output_hash_only(world: World, anchored: bool) -> None:
    receipt = world.issue(MORE_ROWS, receipt_format=2)[2]
    if anchored:
        world.anchor()
    report = world.verify(receipt.model_copy(update={"output": 1e9}))
    assert report.failed == ["output_hash"], report.to_json()


@pytest.mark.parametrize("anchored", [False, True], ids=["pending", "anchored"])
def test_an_altered_input_hash_fails_the_signature(world: World, anchored: bool) -> None:
    receipt = world.issue(MORE_ROWS, receipt_format=2)[0]
    if anchored:
        world.anchor()
    forged = receipt.model_copy(update={"input_hash": input_hash({"x1": 0, "x2": 0})})
    report = world.verify(forged)
    expected = ["signature", "merkle_proof", "batch_anchored"] if anchored else ["signature"]
    assert report.failed == expected, report.to_json()
    assert "signed_proof lead to root" in report.check("signature").detail


def test_a_changed_signed_proof_or_root_fails_the_signature_only(world: World) -> None:
    receipts = world.issue(MORE_ROWS, receipt_format=2)
    world.anchor()
    receipt = receipts[1]
    proof = list(receipt.signed_proof or ())
    proof[0] = os.urandom(32)
    for forged in (
        receipt.model_copy(update={"signed_proof": tuple(proof)}),
        receipt.model_copy(update={"signed_proof": receipts[2].signed_proof}),
        receipt.model_copy(update={"signed_root": os.urandom(32)}),
    ):
        report = world.verify(forged)
        # the anchoring proves the leaf, which is intact: only the signature can tell
        assert report.failed == ["signature"], report.to_json()


def test_another_requests_signature_fails_the_signature(world: World) -> None:
    first = world.issue(MORE_ROWS, receipt_format=2)[0]
    second = world.issue(MORE_ROWS, receipt_format=2)[0]
    world.anchor()
    forged = first.model_copy(
        update={"signature": second.signature, "signed_root": second.signed_root}
    )
    report = world.verify(forged)
    assert report.check("signature").ok is False, report.to_json()
