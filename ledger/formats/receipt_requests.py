"""Receipts of format 2 on the issuing side: a request's receipts signed once, each with its proof.

The prediction path hands the model's outputs here and gets back everything it will need,
computed once per row: each receipt's id, hashes, canonical output text, Merkle leaf and proof
to the signed root, and the receipt's canonical JSON (what the receipt book stores and the
answer shows). Nothing is validated a second time: every value was made here from checked
parts, and ``tests/ledger/test_receipt_requests.py`` holds each text to ``Receipt.to_json`` and
each receipt to the verifier.

The format itself (the leaf, the root's EIP-712 digest, the JSON) is
:mod:`ledger.formats.receipts`; the key that signs is :class:`~ledger.formats.receipt_signing.
ReceiptSigner`'s (:meth:`~ledger.formats.receipt_signing.ReceiptSigner.sign_request`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple

from ledger.formats.receipts import Receipt
from ml.hashing import to_hex

__all__ = ["IssuedReceipt", "SignedRequest"]


class IssuedReceipt(NamedTuple):
    """What the receipt book keeps of one receipt, as the issuing path computed it: ids as
    ``0x`` lowercase hex, the leaf hash the anchorer's tree is built from, the receipt's
    canonical JSON and the input row's canonical JSON. (A named tuple: a request makes one per
    row, and a tuple is made several times faster than a frozen dataclass.)"""

    receipt_id: str
    model_hash: str
    leaf: bytes
    body: str
    input: str


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The receipts of one request, signed once (format 2); the sequences are per row, in the
    order of the request's rows."""

    model_hash: bytes
    issued_at: int
    service: str
    signature: bytes
    root: bytes
    receipt_ids: Sequence[bytes]
    input_hashes: Sequence[bytes]
    outputs: Sequence[Any]
    output_texts: Sequence[str]
    output_hashes: Sequence[bytes]
    leaves: Sequence[bytes]
    proofs: Sequence[Sequence[bytes]]

    def __len__(self) -> int:
        return len(self.receipt_ids)

    def receipt(self, index: int) -> Receipt:
        """Row ``index``'s receipt (built from checked parts: not validated again)."""
        return Receipt.model_construct(
            receipt_id=self.receipt_ids[index],
            model_hash=self.model_hash,
            input_hash=self.input_hashes[index],
            output=self.outputs[index],
            output_hash=self.output_hashes[index],
            issued_at=self.issued_at,
            service=self.service,
            signature=self.signature,
            format=2,
            signed_root=self.root,
            signed_proof=tuple(self.proofs[index]),
        )

    def receipts(self) -> list[Receipt]:
        """Every row's receipt."""
        return [self.receipt(i) for i in range(len(self))]

    def bodies(self) -> list[str]:
        """Each receipt's canonical JSON, exactly ``Receipt.to_json()``, written out with the
        request's shared parts formatted once (and each tree node's hex once: the rows' proofs
        share most of their nodes)."""
        nodes = set(chain.from_iterable(self.proofs))
        shown = {node: f'"0x{node.hex()}"' for node in nodes}.__getitem__
        shared_head = '{"format":2,"input_hash":"0x'
        issued = f'","issued_at":{self.issued_at},"model_hash":"{to_hex(self.model_hash)}"'
        tail = (
            f'","service":"{self.service}","signature":"{to_hex(self.signature)}","signed_proof":['
        )
        root = f'],"signed_root":"{to_hex(self.root)}"}}'
        return [
            f'{shared_head}{input_hash.hex()}{issued},"output":{text},"output_hash":"0x'
            f'{output_hash.hex()}","receipt_id":"0x{receipt_id.hex()}{tail}'
            f"{','.join(map(shown, proof))}{root}"
            for input_hash, text, output_hash, receipt_id, proof in zip(
                self.input_hashes,
                self.output_texts,
                self.output_hashes,
                self.receipt_ids,
                self.proofs,
                strict=True,
            )
        ]

    def issued(self, inputs: Sequence[str]) -> list[IssuedReceipt]:
        """What the receipt book keeps of each receipt; ``inputs`` are the rows' canonical
        JSON texts (the ones their input hashes were computed from)."""
        model = to_hex(self.model_hash)
        return [
            IssuedReceipt("0x" + receipt_id.hex(), model, leaf, body, text)
            for receipt_id, leaf, body, text in zip(
                self.receipt_ids, self.leaves, self.bodies(), inputs, strict=True
            )
        ]
