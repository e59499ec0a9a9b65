"""Block hints let a reader find one record's events without scanning the whole chain.

Two kinds: the service's own index (trusted: a wrong hint falls back to the scan, and role
history is scanned once per block), and the blocks a piece of evidence claims (an anchored
receipt's ``block_number``, a bundle's records): each claim is checked against the event found
there, a wrong one fails ``block_hints`` and is not followed, and a chain is scanned only for
what no claim places."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from ledger.records import hash_hex
from tests.ledger._world import world

__all__ = ["world"]  # the fixture, from tests.ledger._world


def h(n: int) -> str:
    return hash_hex(keccak(n.to_bytes(32, "big")))


def spy_on_ranges(client, monkeypatch):
    ranges = []
    original = client._logs

    def logs(topics, start, end):
        ranges.append((start, end))
        return original(topics, start, end)

    monkeypatch.setattr(client, "_logs", logs)
    return ranges


def test_a_right_hint_reads_one_block(deployed, monkeypatch):
    reader = deployed.outsider
    tx = deployed.registrar.register_dataset(h(1), rows_root=h(2), row_count=1, schema_hash=h(3))
    reader.block_hints = lambda event, key: tx.block_number if key == h(1) else None
    ranges = spy_on_ranges(reader, monkeypatch)
    assert reader.dataset_registration(h(1)).tx_hash == tx.tx_hash
    assert ranges == [(tx.block_number, tx.block_number)]


def test_a_wrong_hint_falls_back_to_the_scan(deployed, monkeypatch):
    reader = deployed.outsider
    tx = deployed.registrar.register_dataset(h(1), rows_root=h(2), row_count=1, schema_hash=h(3))
    reader.block_hints = lambda event, key: tx.block_number - 1  # the wrong block
    ranges = spy_on_ranges(reader, monkeypatch)
    assert reader.dataset_registration(h(1)).tx_hash == tx.tx_hash
    assert ranges == [(tx.block_number - 1, tx.block_number - 1), (None, "latest")]
    deployed.registrar.revoke(h(1), "bad")
    assert reader.revocation(h(1)).reason == "bad"


def test_role_history_is_scanned_incrementally(deployed, monkeypatch):
    admin, newcomer = deployed.admin, deployed.chain.account().address
    assert admin.registrar_history(newcomer) == []
    admin.grant_registrar(newcomer)
    calls = []
    original = admin._role_changes
    monkeypatch.setattr(
        admin, "_role_changes", lambda a, s, e: calls.append((s, e)) or original(a, s, e)
    )
    granted = admin.registrar_history(newcomer)
    assert [g for _, _, g in granted] == [True]
    admin.revoke_registrar(newcomer)
    assert [g for _, _, g in admin.registrar_history(newcomer)] == [True, False]
    assert calls[1][0] == calls[0][1] + 1  # the second scan starts where the first ended


def test_the_index_keeps_role_changes_so_only_newer_blocks_are_scanned(
    deployed, tmp_path, monkeypatch
):
    from ledger.index.sqlite import LedgerIndex

    admin, newcomer = deployed.admin, deployed.chain.account().address
    admin.grant_registrar(newcomer)
    admin.revoke_registrar(newcomer)
    index = LedgerIndex(tmp_path / "index.sqlite3")
    index.sync(admin)
    changes, covered = index.registrar_changes(newcomer, admin.address)
    assert [granted for _, _, granted in changes] == [True, False]
    assert covered == admin.latest_block()
    reader = deployed.as_account(deployed.chain.account())  # a fresh client: empty cache
    reader.role_history = index.registrar_changes
    scans = []
    original = reader._role_changes
    monkeypatch.setattr(
        reader, "_role_changes", lambda a, s, e: scans.append((s, e)) or original(a, s, e)
    )
    assert reader.registrar_history(newcomer) == changes
    assert all(start > covered for start, _ in scans)  # only blocks the index has not seen
    index.close()


# ---------------------------------------------------------------------------------------------
# Claims of evidence: checked, never trusted
# ---------------------------------------------------------------------------------------------


def _claims_world(world):
    """An anchored receipt, its anchoring, and the claims a bundle of it would carry."""
    from ledger.verify import BlockClaims

    [receipt, *_] = world.issue()
    world.anchor()
    anchoring = world.anchoring(receipt)
    client = world.client
    records = [
        {"kind": kind, "hash": key, "block_number": event.block_number, "tx_hash": event.tx_hash}
        for kind, key, event in (
            ("model", world.model, client.model_registration(world.model)),
            ("dataset", world.derived, client.dataset_registration(world.derived)),
            ("dataset", world.raw, client.dataset_registration(world.raw)),
            ("batch", anchoring.batch_id, client.batch_anchoring(anchoring.batch_id)),
        )
    ]
    return receipt, anchoring, records, BlockClaims.from_records(records)


def _scans(facts):
    """The (from, to) ranges a fresh ChainFacts reads events over."""
    ranges = []
    original = facts.reader.find

    def find(event, key, start, end):
        ranges.append((event, start, end))
        return original(event, key, start, end)

    facts.reader.find = find
    return ranges


def test_right_claims_place_every_event_and_nothing_is_scanned(world):
    from ledger.verify import ChainFacts, verify_receipt

    receipt, anchoring, _, claims = _claims_world(world)
    facts = ChainFacts.for_client(world.client)  # no index: only the claims place events
    facts.hints = None
    ranges = _scans(facts)
    report = verify_receipt(receipt, facts, anchoring=anchoring, claims=claims)
    assert report.verdict == "valid", report.to_json()
    assert report.check("block_hints").ok is True
    assert "4 claimed block(s)" in report.check("block_hints").detail
    assert ranges and all(start == end for _, start, end in ranges), ranges  # single blocks


def test_without_claims_the_events_are_scanned_for(world):
    from ledger.verify import Anchoring, ChainFacts, verify_receipt

    receipt, anchoring, _, _ = _claims_world(world)
    bare = Anchoring(anchoring.batch_id, anchoring.leaf, anchoring.proof)  # no block_number
    facts = ChainFacts.for_client(world.client)
    facts.hints = None
    ranges = _scans(facts)
    report = verify_receipt(receipt, facts, anchoring=bare)
    assert report.verdict == "valid"
    assert report.check("block_hints").ok is None
    assert any(start != end for _, start, end in ranges)


@pytest.mark.parametrize("field", ["block_number", "tx_hash"])
def test_a_wrong_claim_in_a_bundle_is_reported_not_followed(world, field):
    from ledger.verify import BlockClaims, ChainFacts, verify_receipt

    receipt, anchoring, records, _ = _claims_world(world)
    wrong = dict(records[0])  # the model's registration
    wrong[field] = wrong["block_number"] - 1 if field == "block_number" else "0x" + "ee" * 32
    claims = BlockClaims.from_records([wrong, *records[1:]])
    facts = ChainFacts.for_client(world.client)
    facts.hints = None
    report = verify_receipt(receipt, facts, anchoring=anchoring, claims=claims)
    # Only the claim fails: the model was found where it really is, and all else holds.
    assert report.failed == ["block_hints"], report.to_json()
    assert world.model in report.check("block_hints").detail
    assert report.check("model_registered").ok is True
    event = world.client.model_registration(world.model)
    assert f"block {event.block_number}" in report.check("model_registered").detail


def test_a_wrong_anchoring_block_on_a_receipt_is_reported(world):
    from dataclasses import replace

    from ledger.verify import ChainFacts, verify_receipt

    receipt, anchoring, _, _ = _claims_world(world)
    moved = replace(anchoring, block_number=anchoring.block_number - 1)
    facts = ChainFacts.for_client(world.client)
    report = verify_receipt(receipt, facts, anchoring=moved)
    assert report.failed == ["block_hints"], report.to_json()
    assert report.check("batch_anchored").ok is True
    # A claim past the head is as wrong as any other.
    later = replace(anchoring, block_number=anchoring.block_number + 1000)
    assert verify_receipt(receipt, facts, anchoring=later).failed == ["block_hints"]


def test_malformed_claims_are_format_errors():
    from ledger.formats.receipts import ReceiptFormatError
    from ledger.verify import Anchoring, BlockClaims

    good = {"kind": "model", "hash": "0x" + "11" * 32, "block_number": 5}
    assert BlockClaims.from_records([good]).block("ModelRegistered", good["hash"]) == 5
    for bad in ({**good, "block_number": "5"}, {**good, "block_number": -1},
                {**good, "hash": "0x12"}, {**good, "tx_hash": "nope"}):  # fmt: skip
        with pytest.raises(ReceiptFormatError):
            BlockClaims.from_records([bad])
    with pytest.raises(ReceiptFormatError):
        BlockClaims.from_records({"not": "a list"})
    doc = {"batch_id": "0x" + "11" * 32, "leaf": "0x" + "22" * 32, "proof": []}
    with pytest.raises(ReceiptFormatError, match="block number"):
        Anchoring.from_json({**doc, "block_number": True})
