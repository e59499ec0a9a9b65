"""What a piece of evidence claims, in checked form: a receipt's anchoring, and the blocks that
an anchored receipt or an evidence bundle says its events are in.

Claims are hints for finding events without a scan, never facts: the verifier checks each one
against the event it finds at the claimed block (``block_hints``), so a wrong claim is a failed
check. A malformed claim (a block number that is not a number) is a format error, as a
malformed hash is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.formats.receipt_parsing import parse_receipt
from ledger.formats.receipts import Receipt, ReceiptFormatError
from ledger.records import hash_hex

__all__ = [
    "Anchoring",
    "BlockClaim",
    "BlockClaims",
    "ReceiptEvidence",
    "evidence_from_document",
    "receipt_documents",
]

_RECEIPT_FIELDS = tuple(Receipt.model_fields)
_KIND_EVENTS = {
    "dataset": "DatasetRegistered",
    "model": "ModelRegistered",
    "batch": "PredictionsAnchored",
}


_NODE = re.compile(r"0x[0-9a-f]{64}")


def _node(value: Any) -> str:
    """A proof node as ``hash_hex`` has it: the common spelling (0x, lower case) checked at
    once, any other one normalised (a proof of a 100,000-receipt batch has 17 nodes)."""
    if type(value) is str and _NODE.fullmatch(value):
        return value
    return hash_hex(value)


def _block_number(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise ReceiptFormatError(f"malformed {what}: a block number is an int >= 0, got {value!r}")
    return value


def _tx_hash(value: Any, what: str) -> str | None:
    if value is None:
        return None
    try:
        return hash_hex(value)
    except ValueError as exc:
        raise ReceiptFormatError(f"malformed {what}: {exc}") from None


@dataclass(frozen=True)
class Anchoring:
    """Where a receipt claims to be anchored: its batch (= Merkle root), leaf and proof, and,
    when the document says so, the block and transaction of the anchoring (claims to check)."""

    batch_id: str
    leaf: str
    proof: tuple[str, ...]
    block_number: int | None = None
    tx_hash: str | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Anchoring | None:
        """The anchoring fields of a receipt document, or None if it has none yet.

        Raises:
            ReceiptFormatError: ``batch_id``, ``leaf``, ``tx_hash`` or a ``proof`` item is not
                a 32-byte hash, ``proof`` is not a list, or ``block_number`` is not an int.
        """
        if not doc.get("batch_id") or doc.get("proof") is None or not doc.get("leaf"):
            return None
        proof = doc["proof"]
        try:
            if not isinstance(proof, list | tuple):
                raise ValueError(f"proof must be a list of hashes, got {type(proof).__name__}")
            batch_id, leaf = hash_hex(doc["batch_id"]), hash_hex(doc["leaf"])
            nodes = tuple(_node(node) for node in proof)
        except ValueError as exc:
            raise ReceiptFormatError(f"malformed anchoring: {exc}") from None
        return cls(
            batch_id,
            leaf,
            nodes,
            _block_number(doc.get("block_number"), "anchoring"),
            _tx_hash(doc.get("tx_hash"), "anchoring"),
        )


@dataclass(frozen=True)
class BlockClaim:
    """Evidence says event ``event`` of record ``key`` is in ``block`` (and transaction)."""

    event: str
    key: str
    block: int
    tx_hash: str | None = None


@dataclass(frozen=True)
class BlockClaims:
    """The block claims of one piece of evidence, by (event, record hash)."""

    claims: Mapping[tuple[str, str], BlockClaim] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.claims)

    def __iter__(self) -> Iterator[BlockClaim]:
        return iter(self.claims.values())

    def get(self, event: str, key: str) -> BlockClaim | None:
        return self.claims.get((event, key))

    def block(self, event: str, key: str) -> int | None:
        claim = self.claims.get((event, key))
        return claim.block if claim is not None else None

    def with_anchoring(self, anchoring: Anchoring | None) -> BlockClaims:
        """These claims plus the anchoring's own (its batch's block and transaction)."""
        if anchoring is None or anchoring.block_number is None:
            return self
        claim = BlockClaim(
            "PredictionsAnchored", anchoring.batch_id, anchoring.block_number, anchoring.tx_hash
        )
        return BlockClaims({**self.claims, (claim.event, claim.key): claim})

    @classmethod
    def from_records(cls, records: Any) -> BlockClaims:
        """The claims of an evidence bundle's ``records`` (dataset, model and batch entries,
        each with its ``hash``, ``block_number`` and ``tx_hash``); other entries are ignored.

        Raises:
            ReceiptFormatError: ``records`` is not a list, or an entry's hash, block number
                or transaction hash is malformed.
        """
        if records is None:
            return cls()
        if not isinstance(records, list):
            raise ReceiptFormatError("malformed bundle: records must be a list")
        claims: dict[tuple[str, str], BlockClaim] = {}
        for entry in records:
            if not isinstance(entry, Mapping) or entry.get("kind") not in _KIND_EVENTS:
                continue
            block = _block_number(entry.get("block_number"), "bundle record")
            if block is None or entry.get("hash") is None:
                continue
            try:
                key = hash_hex(entry["hash"])
            except ValueError as exc:
                raise ReceiptFormatError(f"malformed bundle record: {exc}") from None
            claim = BlockClaim(
                _KIND_EVENTS[entry["kind"]],
                key,
                block,
                _tx_hash(entry.get("tx_hash"), "bundle record"),
            )
            claims[(claim.event, key)] = claim
        return cls(claims)


def receipt_documents(text: str, *, guard: Callable[[str], None] | None = None) -> list[Any]:
    """The receipt documents of an audit file: a JSON list of receipts, ``{"receipts": [...]}``
    (as ``POST /v1/verify/receipts`` takes them), or JSON lines (one receipt per line, as
    ``GET /v1/batches/{id}/receipts`` exports them). Documents are not checked here.

    ``guard`` sees each JSON text (every line, or the whole document) before it is parsed, and
    may refuse it by raising (the service measures its nesting there).

    Raises:
        ReceiptFormatError: the text is none of those forms.
    """
    stripped = text.strip()
    first, _, rest = stripped.partition("\n")
    check = guard or (lambda _: None)
    try:
        if rest.strip() and first.lstrip().startswith("{") and _is_object(first, check):
            lines = [line for line in stripped.splitlines() if line.strip()]
            for line in lines:
                check(line)
            return [json.loads(line) for line in lines]
        check(stripped)
        document = json.loads(stripped) if stripped else []
    except ValueError as exc:
        raise ReceiptFormatError(f"not JSON or JSON lines: {exc}") from None
    if isinstance(document, Mapping) and isinstance(document.get("receipts"), list):
        return list(document["receipts"])
    if isinstance(document, list):
        return document
    raise ReceiptFormatError('expected a list of receipts, {"receipts": [...]} or JSON lines')


def _is_object(line: str, check: Callable[[str], None]) -> bool:
    check(line)
    try:
        return isinstance(json.loads(line), Mapping)
    except ValueError:
        return False


@dataclass(frozen=True)
class ReceiptEvidence:
    """One receipt to verify, with what its document claims: its anchoring (None: not anchored
    yet), block claims to check, and ``anchoring_error`` when its batch will never be anchored
    (the service gave up on it): such a receipt is invalid, not pending."""

    receipt: Receipt
    anchoring: Anchoring | None = None
    claims: BlockClaims = field(default_factory=BlockClaims)
    anchoring_error: str | None = None


def evidence_from_document(document: Any) -> ReceiptEvidence:
    """A receipt document, as ``GET /v1/receipts/{id}`` returns it (anchored or not), as
    evidence: the receipt, its anchoring and the anchoring's block claim.

    Raises:
        ReceiptFormatError: not an object, or a field is missing or malformed.
    """
    if not isinstance(document, Mapping):
        raise ReceiptFormatError(f"a receipt is a JSON object, got {type(document).__name__}")
    receipt = parse_receipt({k: document[k] for k in _RECEIPT_FIELDS if k in document})
    return ReceiptEvidence(receipt, Anchoring.from_json(document))
