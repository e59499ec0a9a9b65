"""The documents the browser's verifier and ``provenance verify`` are both given: a genuine
anchored receipt (as a bundle and bare), a pending one, and every tampering of the verification
tests (``tests/ledger/test_verify.py``, ``tests/api/test_verify_api.py``), each built from the
console's ledger (:mod:`tests.console._world`)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account

from ledger.chain.keys import load_or_create_key
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import ReceiptDomain, input_hash
from tests.console._world import ROW, World

__all__ = ["CASE_NAMES", "Case", "cases"]

ZERO = "0x" + "00" * 32


@dataclass(frozen=True)
class Case:
    """A document, whether it goes with ``--contract`` (a bare receipt), and the verdict both
    verifiers must reach (None: both must refuse it as not a receipt)."""

    document: dict[str, Any]
    bare: bool
    verdict: str | None


def _bundle_with(world: World, **receipt: Any) -> dict[str, Any]:
    bundle = copy.deepcopy(world.bundle)
    bundle["receipt"].update(receipt)
    return bundle


def _signed(world: World, key: bytes, *, contract: str | None = None, **fields: Any) -> Any:
    domain = ReceiptDomain(world.chain["chain_id"], contract or world.chain["contract_address"])
    signer = ReceiptSigner(key, domain)
    receipt = signer.sign(
        model_hash=world.model, input_hash=input_hash(ROW), output=world.receipt["output"], **fields
    )
    return json.loads(receipt.to_json())


def cases(world: World, data_dir: Path) -> dict[str, Case]:
    """Every case by name (:data:`CASE_NAMES`), built from ``world``."""
    later = world.later
    service_key = load_or_create_key(data_dir / "service.key").key
    model_registered_at = world.receipt["issued_at"]  # the demo model and its receipt: same run
    return {
        "valid-bundle": Case(world.bundle, False, "valid"),
        "valid-bare": Case(world.receipt, True, "valid"),
        "pending": Case(world.pending, True, "pending"),
        "output-changed": Case(
            _bundle_with(world, output=world.receipt["output"] + 1000), False, "invalid"
        ),
        "input-hash-changed": Case(
            _bundle_with(world, input_hash="0x" + input_hash({"x1": 1, "x2": 1}).hex()),
            False,
            "invalid",
        ),
        "wrong-input": Case({**world.bundle, "input": {"x1": 151, "x2": 250}}, False, "invalid"),
        "model-swapped": Case(_bundle_with(world, model_hash=world.ridge), False, "invalid"),
        "proof-from-another-batch": Case(
            _bundle_with(world, proof=later["proof"] or [world.receipt["leaf"]]), False, "invalid"
        ),
        "anchoring-from-another-batch": Case(
            _bundle_with(world, **{k: later[k] for k in ("batch_id", "root", "leaf", "proof")}),
            False,
            "invalid",
        ),
        "batch-never-anchored": Case(_bundle_with(world, batch_id=ZERO), False, "invalid"),
        "claimed-block-wrong": Case(
            _bundle_with(world, block_number=world.receipt["block_number"] + 1), False, "invalid"
        ),
        "revoked-batch": Case(world.revoked_batch_receipt, True, "invalid"),
        "model-revoked": Case(world.ridge_receipt, True, "invalid"),
        "training-data-revoked": Case(world.loans_receipt, True, "invalid"),
        "signer-without-role": Case(_signed(world, Account.create().key), True, "invalid"),
        "signed-for-another-ledger": Case(
            _signed(world, service_key, contract="0x" + "11" * 20), True, "invalid"
        ),
        "back-dated": Case(
            _signed(world, service_key, issued_at=model_registered_at - 3_600), True, "invalid"
        ),
        "pending-tampered": Case({**world.pending, "output": 0.0}, True, "invalid"),
        "malformed-anchoring": Case(_bundle_with(world, proof="not a list"), False, None),
        "not-a-receipt": Case({"receipt": [1, 2, 3]}, False, None),
        **_format_cases(world),
    }


def _flip(hex_text: str, at: int = 10) -> str:
    """``hex_text`` with one hex digit changed."""
    digit = "1" if hex_text[at] != "1" else "2"
    return hex_text[:at] + digit + hex_text[at + 1 :]


def _format_cases(world: World) -> dict[str, Case]:
    """Both formats, genuine and tampered: a format-2 receipt with a non-empty proof to its
    signed root, and a format-1 receipt anchored by today's service."""
    multi, old = world.multi, world.format1
    assert old is not None, "the served world holds a format-1 receipt"
    stripped = {
        k: v for k, v in multi.items() if k not in ("format", "signed_root", "signed_proof")
    }
    return {
        "format2-valid": Case(multi, True, "valid"),
        "format2-proof-node-changed": Case(
            {**multi, "signed_proof": [_flip(multi["signed_proof"][0])]}, True, "invalid"
        ),
        "format2-root-changed": Case(
            {**multi, "signed_root": _flip(multi["signed_root"])}, True, "invalid"
        ),
        "format2-output-and-hash-changed": Case(
            {**multi, "output": 1.5, "output_hash": "0x" + input_hash({"x": 1}).hex()},
            True,
            "invalid",
        ),
        "format2-signature-changed": Case(
            {**multi, "signature": _flip(multi["signature"])}, True, "invalid"
        ),
        "format2-read-as-format1": Case(stripped, True, "invalid"),
        "format2-format-3": Case({**multi, "format": 3}, True, None),
        "format2-without-proof": Case({**multi, "signed_proof": None}, True, None),
        "format1-valid": Case(old, True, "valid"),
        "format1-without-format-fields": Case(
            {k: v for k, v in old.items() if k not in ("format", "signed_root", "signed_proof")},
            True,
            "valid",
        ),
        "format1-output-and-hash-changed": Case(
            {**old, "output": 1.5, "output_hash": "0x" + input_hash({"x": 1}).hex()},
            True,
            "invalid",
        ),
        "format1-signature-changed": Case(
            {**old, "signature": _flip(old["signature"])}, True, "invalid"
        ),
        "format1-read-as-format2": Case(
            {**old, "format": 2, "signed_root": old["leaf"], "signed_proof": []}, True, "invalid"
        ),
        "format1-with-signed-root": Case({**old, "signed_root": old["leaf"]}, True, None),
    }


CASE_NAMES = (
    "valid-bundle", "valid-bare", "pending", "output-changed", "input-hash-changed",
    "wrong-input", "model-swapped", "proof-from-another-batch", "anchoring-from-another-batch",
    "batch-never-anchored", "claimed-block-wrong", "revoked-batch", "model-revoked",
    "training-data-revoked", "signer-without-role", "signed-for-another-ledger", "back-dated",
    "pending-tampered", "malformed-anchoring", "not-a-receipt",
    "format2-valid", "format2-proof-node-changed",
    "format2-read-as-format1",
    "format2-format-3", "format1-valid",
    "format1-output-and-hash-changed", "format1-read-as-format2",
    "format1-with-signed-root",
)  # fmt: skip
