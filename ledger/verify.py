"""Verification of receipts, models and dataset files against the chain, trusting nothing else.

Each verifier returns a :class:`Report`: named checks ``{name, ok, detail}`` and one verdict.
A check's ``ok`` is True (passed), False (failed) or None (not applicable, or waiting for
anchoring). The verdict is ``invalid`` if any check failed, ``pending`` if a receipt is sound
but not anchored yet, ``valid`` otherwise. Reports never raise for a bad subject: a forged
receipt is a finding, not an exception. Only an unreachable chain raises.

Everything about lineage is read from the contract (storage for revocation, events for fields);
the artifact store, when given, is only ever compared against hashes taken from the chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ledger.ancestry import AncestorFacts, AncestorLookup, walk_ancestry
from ledger.client import LedgerClient
from ledger.errors import LedgerError, UnknownRecord
from ledger.merkle import MerkleError, leaf_hash, process_proof
from ledger.receipts import (
    RECEIPT_LEAF_ENCODING,
    Receipt,
    ReceiptDomain,
    ReceiptError,
    ReceiptFormatError,
    input_hash,
    output_hash,
    receipt_leaf,
    recover_signer,
)
from ledger.records import ZERO_HASH, hash_hex
from ledger.store import ArtifactStore

__all__ = [
    "Anchoring",
    "Check",
    "Report",
    "verify_dataset_bytes",
    "verify_model",
    "verify_receipt",
]

Verdict = Literal["valid", "invalid", "pending"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Report:
    """The outcome of one verification."""

    subject: str
    kind: str
    checks: tuple[Check, ...]
    pending: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        if any(c.ok is False for c in self.checks):
            return "invalid"
        return "pending" if self.pending else "valid"

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.ok is False]

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "kind": self.kind,
            "verdict": self.verdict,
            "checks": [c.to_json() for c in self.checks],
            **self.extra,
        }


@dataclass(frozen=True)
class Anchoring:
    """Where a receipt claims to be anchored: its batch (= Merkle root), leaf and proof."""

    batch_id: str
    leaf: str
    proof: tuple[str, ...]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Anchoring | None:
        """The anchoring fields of a receipt document, or None if it has none yet.

        Raises:
            ReceiptFormatError: ``batch_id``, ``leaf`` or a ``proof`` item is not a 32-byte
                hash, or ``proof`` is not a list.
        """
        if not doc.get("batch_id") or doc.get("proof") is None or not doc.get("leaf"):
            return None
        proof = doc["proof"]
        try:
            if not isinstance(proof, list | tuple):
                raise ValueError(f"proof must be a list of hashes, got {type(proof).__name__}")
            return cls(
                hash_hex(doc["batch_id"]),
                hash_hex(doc["leaf"]),
                tuple(hash_hex(node) for node in proof),
            )
        except ValueError as exc:
            raise ReceiptFormatError(f"malformed anchoring: {exc}") from None


class _Checks:
    """The checks of one report, in the order they were made."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(self, name: str, ok: bool | None, detail: str) -> bool | None:
        self.items.append(Check(name, ok, detail))
        return ok


def _chain_datasets(client: LedgerClient) -> AncestorLookup:
    """The ancestry walk's lookup, straight from the contract: the revocation flag from
    storage, the parents from the registration event."""

    def lookup(content_hash: str) -> AncestorFacts | None:
        try:
            event = client.dataset_registration(content_hash)
            record = client.get_dataset(content_hash)
        except UnknownRecord:
            return None
        return AncestorFacts(revoked=record.revoked, parents=event.parents)

    return lookup


def _lineage_check(client: LedgerClient, datasets: tuple[str, ...], checks: _Checks) -> set[str]:
    """Every dataset and every ancestor registered and not revoked; returns all of them."""
    ancestry = walk_ancestry(datasets, _chain_datasets(client))
    problems = [f"dataset {current} is not registered" for current in ancestry.unknown]
    for current in ancestry.revoked:
        revocation = client.revocation(current)
        reason = f": {revocation.reason}" if revocation else ""
        problems.append(f"dataset {current} is revoked{reason}")
    if problems:
        checks.add("training_data", False, "; ".join(sorted(problems)))
    else:
        count = len(ancestry.visited)
        checks.add("training_data", True, f"{count} dataset(s) in the lineage, none revoked")
    return set(ancestry.visited)


def _revocation_check(
    client: LedgerClient, name: str, record_hash: str, what: str, checks: _Checks
) -> None:
    if client.is_revoked(record_hash):
        revocation = client.revocation(record_hash)
        reason = f" ({revocation.reason}, block {revocation.block_number})" if revocation else ""
        checks.add(name, False, f"{what} {record_hash} is revoked{reason}")
    else:
        checks.add(name, True, f"{what} {record_hash} is not revoked")


def _artifact_check(
    store: ArtifactStore | None, digests: list[tuple[str, str]], checks: _Checks
) -> None:
    if store is None:
        checks.add("artifacts", None, "no artifact store given: files not checked")
        return
    problems = []
    for what, digest in digests:
        if digest == ZERO_HASH:
            continue
        try:
            store.verified_path(digest)
        except LedgerError as exc:
            problems.append(f"{what}: {exc}")
    if problems:
        checks.add("artifacts", False, "; ".join(problems))
    else:
        checks.add("artifacts", True, f"{len(digests)} file(s) match their on-chain hashes")


def _signer_check(
    client: LedgerClient, signer: str, anchored_at: tuple[int, int] | None, checks: _Checks
) -> None:
    """The signer held ``REGISTRAR_ROLE`` when the receipt was anchored (or now, if pending).

    The anchoring block is the only time the chain vouches for: a receipt anchored while its
    signer held the role stays valid after the role is revoked, and one anchored while the role
    was revoked stays unauthorized even if the role is granted again later. Role changes in the
    anchoring block itself count as earlier.
    """
    if anchored_at is None:
        if client.is_registrar(signer):
            checks.add("signer_authorized", True, f"{signer} holds REGISTRAR_ROLE")
        else:
            history = client.registrar_history(signer)
            checks.add(
                "signer_authorized",
                False,
                f"{signer} lost REGISTRAR_ROLE in block {history[-1][0]}"
                if history
                else f"{signer} never held REGISTRAR_ROLE",
            )
        return
    history = client.registrar_history(signer)
    held = False
    for block, log_index, granted in history:
        if (block, log_index) > anchored_at:
            break
        held = granted
    if not history:
        checks.add("signer_authorized", False, f"{signer} never held REGISTRAR_ROLE")
    elif not held:
        checks.add(
            "signer_authorized",
            False,
            f"{signer} did not hold REGISTRAR_ROLE when this receipt was anchored "
            f"(block {anchored_at[0]}; role changes: {_role_changes(history)})",
        )
    elif history[-1][2]:
        checks.add("signer_authorized", True, f"{signer} holds REGISTRAR_ROLE")
    else:
        checks.add(
            "signer_authorized",
            True,
            f"{signer} lost REGISTRAR_ROLE in block {history[-1][0]}, after this receipt was "
            f"anchored in block {anchored_at[0]}",
        )


def _role_changes(history: list[tuple[int, int, bool]]) -> str:
    return ", ".join(f"{'granted' if g else 'revoked'} in block {b}" for b, _, g in history)


def verify_receipt(
    receipt: Receipt,
    client: LedgerClient,
    *,
    anchoring: Anchoring | None,
    store: ArtifactStore | None = None,
    input_row: Mapping[str, Any] | None = None,
    rerun: Callable[[Mapping[str, Any]], Any] | None = None,
    anchoring_error: str | None = None,
) -> Report:
    """Verify one prediction receipt: signature, inclusion, anchoring, model and lineage.

    ``anchoring_error`` says that the receipt's batch will never be anchored (the service gave
    up on it, e.g. its model was revoked first): the receipt is then invalid, not pending.
    """
    checks = _Checks()
    receipt_id = hash_hex(receipt.receipt_id)
    model_hash = hash_hex(receipt.model_hash)
    domain = ReceiptDomain(client.chain_id(), client.address)

    # 1. The output is the one that was signed.
    actual = output_hash(receipt.output)
    checks.add(
        "output_hash",
        actual == receipt.output_hash,
        "output matches output_hash"
        if actual == receipt.output_hash
        else f"output hashes to 0x{actual.hex()}, the receipt says 0x{receipt.output_hash.hex()}",
    )
    # 2. The service's key signed exactly these fields.
    try:
        signer = recover_signer(receipt, domain)
    except ReceiptError as exc:
        signer = None
        checks.add("signature", False, str(exc))
    else:
        checks.add(
            "signature",
            signer == receipt.service,
            f"signed by {signer}"
            if signer == receipt.service
            else f"the receipt names {receipt.service} but {signer} signed these fields",
        )
    # 3. The input, when the verifier has it.
    if input_row is not None:
        try:
            ok = input_hash(input_row) == receipt.input_hash
            detail = "input matches" if ok else "input does not hash to input_hash"
        except ValueError as exc:  # NaN, a non-JSON value: it cannot be what was signed
            # (input_hash now raises ml's CanonicalJsonError, a ValueError like ReceiptError)
            ok, detail = False, f"the input cannot be hashed: {exc}"
        checks.add("input_hash", ok, detail)

    # 4. Inclusion in a batch, and the batch on chain for this model.
    anchored_at = None
    if anchoring is None and anchoring_error is not None:
        checks.add("merkle_proof", None, "never anchored")
        checks.add("batch_anchored", False, f"anchoring failed for good: {anchoring_error}")
    elif anchoring is None:
        checks.add("merkle_proof", None, "not anchored yet")
        checks.add("batch_anchored", None, "not anchored yet")
    else:
        leaf = hash_hex(leaf_hash(RECEIPT_LEAF_ENCODING, receipt_leaf(receipt)))
        try:
            root = hash_hex(process_proof(leaf, anchoring.proof))
        except MerkleError as exc:
            root = f"(malformed proof: {exc})"
        proof_ok = leaf == anchoring.leaf and root == anchoring.batch_id
        checks.add(
            "merkle_proof",
            proof_ok,
            f"leaf {leaf} is in batch {anchoring.batch_id}"
            if proof_ok
            else f"leaf {leaf} with this proof gives root {root}, not {anchoring.batch_id}",
        )
        try:
            event = client.batch_anchoring(anchoring.batch_id)
        except UnknownRecord:
            checks.add("batch_anchored", False, f"no batch {anchoring.batch_id} on chain")
        else:
            anchored_at = (event.block_number, event.log_index)
            on_chain = proof_ok and client.verify_prediction(
                anchoring.batch_id, leaf, anchoring.proof
            )
            if event.model_hash != model_hash:
                checks.add(
                    "batch_anchored",
                    False,
                    f"batch {anchoring.batch_id} was anchored for model {event.model_hash}, "
                    f"not {model_hash}",
                )
            else:
                checks.add(
                    "batch_anchored",
                    on_chain,
                    f"anchored in block {event.block_number} (tx {event.tx_hash}); "
                    f"the contract {'accepts' if on_chain else 'rejects'} the proof",
                )
            _revocation_check(client, "batch_not_revoked", anchoring.batch_id, "batch", checks)

    # 5. The signer may sign for the ledger.
    if signer is not None:
        _signer_check(client, signer, anchored_at, checks)

    # 6. The model and everything it was trained on.
    model_event = _model_checks(client, model_hash, checks)
    if model_event is not None:
        _artifact_check(
            store,
            [("model", model_hash), ("training metadata", model_event.metadata_hash)],
            checks,
        )
    # 7. Optionally, run the model again on the input.
    if rerun is not None and input_row is not None:
        try:
            again = rerun(input_row)
        except Exception as exc:  # a finding for the report, whatever the model raised
            checks.add("rerun", False, f"re-running the model failed: {exc}")
        else:
            same = output_hash(again) == receipt.output_hash
            checks.add(
                "rerun", same, "re-run reproduces the output" if same else f"re-run gave {again!r}"
            )
    return Report(receipt_id, "receipt", tuple(checks.items), pending=anchoring is None)


def _model_checks(client: LedgerClient, model_hash: str, checks: _Checks) -> Any:
    try:
        event = client.model_registration(model_hash)
        client.get_model(model_hash)
    except UnknownRecord:
        checks.add("model_registered", False, f"no model {model_hash} on chain")
        return None
    checks.add(
        "model_registered",
        True,
        f"registered in block {event.block_number} by {event.registrant} (tx {event.tx_hash})",
    )
    _revocation_check(client, "model_not_revoked", model_hash, "model", checks)
    _lineage_check(client, event.datasets, checks)
    return event


def verify_model(
    model_hash: str,
    client: LedgerClient,
    *,
    store: ArtifactStore | None = None,
    retrain: Callable[[], str] | None = None,
) -> Report:
    """Verify a model: registered, not revoked, files match, lineage sound, optionally retrain."""
    model_hash = hash_hex(model_hash)
    checks = _Checks()
    event = _model_checks(client, model_hash, checks)
    if event is not None:
        digests = [("model", model_hash), ("training metadata", event.metadata_hash)]
        digests += [(f"dataset {d}", d) for d in event.datasets]
        _artifact_check(store, digests, checks)
        if retrain is not None:
            try:
                again = retrain()
            except Exception as exc:  # a finding, whatever training raised
                checks.add("reproducible", False, f"retraining failed: {exc}")
            else:
                checks.add(
                    "reproducible",
                    again == model_hash,
                    "retraining gives the same model hash"
                    if again == model_hash
                    else f"retraining gives {again}, not {model_hash}",
                )
    return Report(model_hash, "model", tuple(checks.items))


def verify_dataset_bytes(
    data: bytes,
    client: LedgerClient,
    *,
    rows_root: Callable[[bytes], str] | None = None,
) -> Report:
    """Is this exact file registered, intact in its row root, and is its lineage sound?"""
    content_hash = hash_hex(hashlib.sha256(data).digest())
    checks = _Checks()
    try:
        event = client.dataset_registration(content_hash)
    except UnknownRecord:
        checks.add("dataset_registered", False, f"no dataset {content_hash} on chain")
        return Report(content_hash, "dataset", tuple(checks.items))
    checks.add(
        "dataset_registered",
        True,
        f"registered in block {event.block_number} by {event.registrant} (tx {event.tx_hash})",
    )
    _revocation_check(client, "dataset_not_revoked", content_hash, "dataset", checks)
    if rows_root is not None:
        try:
            found = rows_root(data)
        except Exception as exc:  # a finding: the file no longer parses
            checks.add("rows_root", False, f"cannot compute the rows root: {exc}")
        else:
            checks.add(
                "rows_root",
                found == event.rows_root,
                "rows root matches the chain"
                if found == event.rows_root
                else f"rows root {found}, the chain says {event.rows_root}",
            )
    if event.parents:
        lineage = _Checks()
        _lineage_check(client, event.parents, lineage)
        check = lineage.items[0]
        checks.add("ancestors", check.ok, check.detail)
    else:
        checks.add("ancestors", None, "raw data: no parents")
    return Report(
        content_hash, "dataset", tuple(checks.items), extra={"record": _event_json(event)}
    )


def _event_json(event: Any) -> dict[str, Any]:
    doc = asdict(event)
    doc["parents"] = list(doc.get("parents", ()))
    return doc
