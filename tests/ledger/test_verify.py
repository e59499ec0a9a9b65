"""ledger.verify against a real chain (embedded and anvil): every tamper fails its own check,
whether the receipt is verified alone, in a bulk run with the others, or as an auditor does
with a bundle's block hints (``tests/ledger/_world.py``'s modes).

A small world is built on a freshly deployed ledger: a raw dataset, a dataset derived (cleaned)
from it, a model trained on the derived one and a second model, their files in an artifact
store, a receipt signer holding ``REGISTRAR_ROLE`` and an anchorer. Genuine receipts must come
out ``pending`` and then ``valid``; each kind of tampering must fail the named check it is
about, with the verdict ``invalid``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import ReceiptDomain, ReceiptFormatError, input_hash
from ledger.records import ZERO_HASH, hash_hex
from ledger.verify import Anchoring, Report, verify_dataset_bytes, verify_model, verify_receipt
from ledger.writes.anchoring import Anchorer
from tests.conftest import Deployed
from tests.ledger._world import CLEAN_CSV, MODES, RAW_CSV, ROWS, World, make_world, output_of, sha


@pytest.fixture(params=MODES)
def world(request: pytest.FixtureRequest, deployed: Deployed, tmp_path: Path) -> Iterator[World]:
    """Every test here runs three ways: one receipt alone, one among all the others in a bulk
    run, and as an auditor with a bundle's block hints and no index."""
    yield from make_world(deployed, tmp_path, request.param)


def _assert_fails(report: Report, *checks: str) -> None:
    """The verdict is invalid, and each named check is there and failed."""
    assert report.verdict == "invalid", report.to_json()
    for name in checks:
        assert report.check(name).ok is False, report.to_json()


# ---------------------------------------------------------------------------------------------
# Genuine receipts
# ---------------------------------------------------------------------------------------------

ALL_RECEIPT_CHECKS = [
    "output_hash",
    "signature",
    "merkle_proof",
    "batch_anchored",
    "batch_not_revoked",
    "signer_authorized",
    "model_registered",
    "model_not_revoked",
    "datasets_before_model",
    "training_data",
    "issued_after_model",
    "issued_before_anchoring",
    "block_hints",
    "artifacts",
]


def test_a_genuine_receipt_is_pending_until_anchored_then_valid(world: World) -> None:
    [receipt, *_] = world.issue()

    before = world.verify(receipt)
    assert before.verdict == "pending", before.to_json()
    assert before.failed == []
    assert before.check("merkle_proof").ok is None
    assert before.check("batch_anchored").ok is None
    for name in ("output_hash", "signature", "signer_authorized", "model_registered"):
        assert before.check(name).ok is True, name
    for name in ("model_not_revoked", "training_data", "artifacts"):
        assert before.check(name).ok is True, name

    world.anchor()
    after = world.verify(receipt)
    assert after.verdict == "valid", after.to_json()
    assert [c.name for c in after.checks] == ALL_RECEIPT_CHECKS
    assert all(c.ok is True for c in after.checks), after.to_json()
    # The lineage check walked up to the raw parent of the training dataset.
    assert "2 dataset(s)" in after.check("training_data").detail

    # Later batches change nothing about an earlier one.
    world.issue([{"x1": 10, "x2": 20}])
    world.anchor()
    assert world.verify(receipt).verdict == "valid"


def test_a_genuine_receipt_with_its_input_and_a_rerun_is_valid(world: World) -> None:
    [receipt, *_] = world.issue()
    world.anchor()
    report = world.verify(receipt, input_row=ROWS[0], rerun=output_of)
    assert report.verdict == "valid", report.to_json()
    assert report.check("input_hash").ok is True
    assert report.check("rerun").ok is True


def test_the_wrong_input_fails_input_hash_and_the_rerun(world: World) -> None:
    [receipt, *_] = world.issue()
    world.anchor()
    report = world.verify(receipt, input_row=ROWS[2], rerun=output_of)
    _assert_fails(report, "input_hash", "rerun")
    assert report.failed == ["input_hash", "rerun"]


def test_an_input_that_is_not_canonical_json_fails_input_hash(world: World) -> None:
    [receipt, *_] = world.issue()
    report = world.verify(receipt, input_row={"x1": float("nan"), "x2": 2})
    _assert_fails(report, "input_hash")
    assert "cannot be hashed" in report.check("input_hash").detail


def test_a_rerun_that_raises_is_a_failed_check_not_an_exception(world: World) -> None:
    [receipt, *_] = world.issue()
    world.anchor()

    def broken(row: Mapping[str, Any]) -> Any:
        raise RuntimeError("the model file cannot be loaded")

    report = world.verify(receipt, input_row=ROWS[0], rerun=broken)
    _assert_fails(report, "rerun")
    assert "cannot be loaded" in report.check("rerun").detail


# ---------------------------------------------------------------------------------------------
# Tampering: each fails its own check
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("anchored", [False, True], ids=["pending", "anchored"])
def test_an_altered_output_fails_output_hash(world: World, anchored: bool) -> None:
    [receipt, *_] = world.issue()
    if anchored:
        world.anchor()
    forged = receipt.model_copy(update={"output": 1e9})
    report = world.verify(forged)
    _assert_fails(report, "output_hash")
    # Only the output was touched: the signed fields, the proof and the lineage still hold.
    assert report.failed == ["output_hash"]


@pytest.mark.parametrize("anchored", [False, True], ids=["pending", "anchored"])
def test_an_altered_input_hash_fails_the_signature(world: World, anchored: bool) -> None:
    [receipt, *_] = world.issue()
    if anchored:
        world.anchor()
    forged = receipt.model_copy(update={"input_hash": input_hash({"x1": 0, "x2": 0})})
    report = world.verify(forged)
    _assert_fails(report, "signature")
    if anchored:  # and the leaf is no longer the one in the batch
        _assert_fails(report, "merkle_proof")


def test_a_swapped_model_hash_fails_the_signature_and_the_anchoring(world: World) -> None:
    [receipt, *_] = world.issue()
    world.anchor()
    forged = receipt.model_copy(update={"model_hash": bytes.fromhex(world.other_model[2:])})
    report = world.verify(forged)
    _assert_fails(report, "signature", "batch_anchored")
    assert world.other_model in report.check("batch_anchored").detail
    # The other model itself is registered and sound: the failure is the swap, not the model.
    assert report.check("model_registered").ok is True


def test_a_proof_from_another_batch_fails_merkle_proof(world: World) -> None:
    [receipt, *_] = world.issue()
    world.anchor()
    [other, *_] = world.issue([{"x1": 3, "x2": 4}, {"x1": 5, "x2": 6}])
    world.anchor()
    mine, theirs = world.anchoring(receipt), world.anchoring(other)
    assert mine is not None and theirs is not None and mine.batch_id != theirs.batch_id

    # Another batch's proof under this receipt's own batch...
    report = world.verify(receipt, anchoring=Anchoring(mine.batch_id, mine.leaf, theirs.proof))
    _assert_fails(report, "merkle_proof", "batch_anchored")
    # ...or the whole anchoring of another receipt's batch.
    report = world.verify(receipt, anchoring=theirs)
    _assert_fails(report, "merkle_proof", "batch_anchored")
    # The genuine anchoring still verifies.
    assert world.verify(receipt).verdict == "valid"


@pytest.mark.parametrize(
    "change",
    [{"batch_id": "0x12"}, {"leaf": 7}, {"proof": "0x" + "ab" * 32}, {"proof": ["0x1234"]}],
)
def test_malformed_anchoring_fields_raise_a_format_error(change: dict[str, Any]) -> None:
    doc = {"batch_id": "0x" + "11" * 32, "leaf": "0x" + "22" * 32, "proof": ["0x" + "33" * 32]}
    assert Anchoring.from_json(doc) == Anchoring(doc["batch_id"], doc["leaf"], (doc["proof"][0],))
    with pytest.raises(ReceiptFormatError, match="malformed anchoring"):
        Anchoring.from_json({**doc, **change})
    assert Anchoring.from_json({**doc, "proof": None}) is None  # not anchored yet


def test_a_batch_that_was_never_anchored_fails_batch_anchored(world: World) -> None:
    [receipt, *_] = world.issue()
    world.book.plan(1000)  # planned (root, leaf, proof) but never sent
    stored = world.book.get(hash_hex(receipt.receipt_id))
    assert stored is not None and stored.batch_id is not None
    claimed = Anchoring(stored.batch_id, stored.leaf or "", stored.proof)
    report = world.verify(receipt, anchoring=claimed)
    _assert_fails(report, "batch_anchored")
    assert report.check("merkle_proof").ok is True


def test_a_revoked_batch_fails_batch_not_revoked(world: World) -> None:
    [receipt, *_] = world.issue()
    world.anchor()
    anchoring = world.anchoring(receipt)
    assert anchoring is not None
    world.deployed.admin.revoke(anchoring.batch_id, "the batch was anchored by mistake")
    report = world.verify(receipt)
    _assert_fails(report, "batch_not_revoked")
    assert report.failed == ["batch_not_revoked"]
    assert "by mistake" in report.check("batch_not_revoked").detail


@pytest.mark.parametrize("anchored", [False, True], ids=["pending", "anchored"])
def test_a_key_without_registrar_role_fails_signer_authorized(world: World, anchored: bool) -> None:
    intruder = ReceiptSigner(Account.create().key, world.domain)  # same domain, no role
    [receipt, *_] = world.issue(signer=intruder)
    if anchored:  # even inside a batch a registrar anchored
        world.anchor()
    report = world.verify(receipt)
    _assert_fails(report, "signer_authorized")
    assert report.failed == ["signer_authorized"]
    assert report.check("signature").ok is True  # a sound signature, by the wrong key
    assert "never held" in report.check("signer_authorized").detail


def test_a_receipt_signed_for_another_ledger_fails_the_signature(world: World) -> None:
    """The EIP-712 domain pins a receipt to one contract: replaying it elsewhere fails."""
    elsewhere = ReceiptDomain(world.domain.chain_id, "0x" + "11" * 20)
    [receipt, *_] = world.issue(signer=ReceiptSigner(world.registrar_account.key, elsewhere))
    world.anchor()
    _assert_fails(world.verify(receipt), "signature")


def test_a_model_revoked_after_anchoring_fails_model_not_revoked(world: World) -> None:
    [receipt, *_] = world.issue()
    world.anchor()
    assert world.verify(receipt).verdict == "valid"
    world.deployed.admin.revoke(world.model, "trained on mislabelled data")
    report = world.verify(receipt)
    _assert_fails(report, "model_not_revoked")
    assert report.failed == ["model_not_revoked"]
    assert "mislabelled" in report.check("model_not_revoked").detail


@pytest.mark.parametrize("which", ["derived", "raw"], ids=["training-dataset", "its-parent"])
def test_a_training_dataset_or_its_parent_revoked_later_fails_training_data(
    world: World, which: str
) -> None:
    [receipt, *_] = world.issue()
    world.anchor()
    revoked = getattr(world, which)
    world.deployed.admin.revoke(revoked, "personal data that should not have been collected")
    report = world.verify(receipt)
    _assert_fails(report, "training_data")
    assert report.failed == ["training_data"]
    detail = report.check("training_data").detail
    assert revoked in detail and "should not have been collected" in detail


def test_training_data_names_every_revoked_dataset_in_the_lineage(world: World) -> None:
    healthy = verify_model(world.model, world.client)
    assert healthy.check("training_data").detail == "2 dataset(s) in the lineage, none revoked"
    world.deployed.admin.revoke(world.derived, "mislabelled")
    world.deployed.admin.revoke(world.raw, "collected without consent")
    report = verify_model(world.model, world.client)
    assert report.failed == ["training_data"]
    # the walk goes on past the revoked training dataset to its revoked parent
    assert report.check("training_data").detail == "; ".join(
        sorted(
            [
                f"dataset {world.derived} is revoked: mislabelled",
                f"dataset {world.raw} is revoked: collected without consent",
            ]
        )
    )


def test_a_model_file_altered_in_the_store_fails_artifacts(world: World) -> None:
    [receipt, *_] = world.issue()
    world.anchor()
    world.store.path_of(world.model).write_bytes(b"model file: y = 0")
    report = world.verify(receipt)
    _assert_fails(report, "artifacts")
    assert report.failed == ["artifacts"]
    assert world.model in report.check("artifacts").detail


def test_a_metadata_file_missing_from_the_store_fails_artifacts(world: World) -> None:
    [receipt, *_] = world.issue()
    world.anchor()
    world.store.path_of(world.metadata).unlink()
    report = world.verify(receipt)
    _assert_fails(report, "artifacts")
    assert world.metadata in report.check("artifacts").detail


def test_without_a_store_artifacts_are_not_checked(world: World) -> None:
    [receipt, *_] = world.issue()
    world.anchor()
    report = verify_receipt(receipt, world.client, anchoring=world.anchoring(receipt))
    assert report.verdict == "valid"
    assert report.check("artifacts").ok is None


def test_an_unanchored_receipt_is_pending_not_valid(world: World) -> None:
    [receipt, *_] = world.issue()
    report = world.verify(receipt)
    assert report.verdict == "pending"
    assert report.to_json()["verdict"] == "pending"
    assert report.check("merkle_proof").ok is None
    # Pending never hides a failure: a tampered unanchored receipt is invalid.
    assert world.verify(receipt.model_copy(update={"output": -1.0})).verdict == "invalid"


def test_a_receipt_for_an_unregistered_model_fails_model_registered(world: World) -> None:
    [receipt, *_] = world.issue(model=sha(b"a model nobody registered"))
    _assert_fails(world.verify(receipt), "model_registered")


# ---------------------------------------------------------------------------------------------
# A registrar whose role was revoked
# ---------------------------------------------------------------------------------------------


def test_a_registrar_whose_role_was_revoked(world: World) -> None:
    """What it anchored before stays valid; what it signs afterwards fails signer_authorized."""
    account, client = world.as_registrar()
    signer = ReceiptSigner(account.key, world.domain)
    own_anchorer = Anchorer(world.book, client, batch_size=1000, interval=3600)
    [before, *_] = world.issue(signer=signer)
    world.anchor(own_anchorer)
    assert world.verify(before).verdict == "valid"

    world.deployed.admin.revoke_registrar(account.address)

    report = world.verify(before)
    assert report.verdict == "valid", report.to_json()
    assert "lost REGISTRAR_ROLE" in report.check("signer_authorized").detail

    [after, *_] = world.issue([{"x1": 9, "x2": 9}], signer=signer)
    _assert_fails(world.verify(after), "signer_authorized")
    # Anchored by a registrar still in office, it is still not authorized.
    world.anchor()
    report = world.verify(after)
    _assert_fails(report, "signer_authorized")
    assert report.failed == ["signer_authorized"]


def test_a_receipt_anchored_while_its_signer_had_no_role_stays_unauthorized_after_regrant(
    world: World,
) -> None:
    """Holding the role today does not vouch for a receipt anchored while it was revoked."""
    account, _ = world.as_registrar()
    signer = ReceiptSigner(account.key, world.domain)
    world.deployed.admin.revoke_registrar(account.address)
    [gap, *_] = world.issue(signer=signer)
    world.anchor()  # by the service's own registrar, while the signer had no role
    _assert_fails(world.verify(gap), "signer_authorized")

    world.deployed.admin.grant_registrar(account.address)
    report = world.verify(gap)
    _assert_fails(report, "signer_authorized")

    # What it signs once re-granted is fine again.
    [later, *_] = world.issue([{"x1": 4, "x2": 4}], signer=signer)
    world.anchor()
    assert world.verify(later).verdict == "valid"


# ---------------------------------------------------------------------------------------------
# Models and dataset files
# ---------------------------------------------------------------------------------------------


def test_verify_model_valid_then_each_failure(world: World) -> None:
    report = verify_model(world.model, world.client, store=world.store)
    assert report.verdict == "valid", report.to_json()
    assert report.check("artifacts").ok is True

    retrained = verify_model(world.model, world.client, retrain=lambda: (True, "identical"))
    assert retrained.check("reproducible").ok is True
    drifted = verify_model(world.model, world.client, retrain=lambda: (False, "different"))
    _assert_fails(drifted, "reproducible")

    world.store.path_of(world.derived).write_bytes(b"x1,x2,y\n0,0,0\n")
    _assert_fails(verify_model(world.model, world.client, store=world.store), "artifacts")

    world.deployed.admin.revoke(world.raw, "collected without consent")
    _assert_fails(verify_model(world.model, world.client), "training_data")
    # The other model was trained on the raw dataset directly.
    _assert_fails(verify_model(world.other_model, world.client), "training_data")

    unknown = verify_model(sha(b"nothing"), world.client)
    _assert_fails(unknown, "model_registered")


def test_verify_dataset_bytes(world: World) -> None:
    raw = verify_dataset_bytes(RAW_CSV, world.client)
    assert raw.verdict == "valid" and raw.check("ancestors").ok is None
    clean = verify_dataset_bytes(CLEAN_CSV, world.client)
    assert clean.verdict == "valid" and clean.check("ancestors").ok is True
    assert clean.to_json()["record"]["parents"] == [world.raw]

    _assert_fails(verify_dataset_bytes(CLEAN_CSV + b"1,1,1\n", world.client), "dataset_registered")
    rows = verify_dataset_bytes(CLEAN_CSV, world.client, rows_root=lambda data: ZERO_HASH)
    _assert_fails(rows, "rows_root")

    world.deployed.admin.revoke(world.raw, "collected without consent")
    _assert_fails(verify_dataset_bytes(RAW_CSV, world.client), "dataset_not_revoked")
    report = verify_dataset_bytes(CLEAN_CSV, world.client)
    _assert_fails(report, "ancestors")
    assert report.check("dataset_not_revoked").ok is True
