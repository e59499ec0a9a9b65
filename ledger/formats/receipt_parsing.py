"""Parsing receipt documents fast: a bulk audit parses a hundred thousand of them, and
``Receipt.model_validate`` costs several times what these few checks do. Kept apart from
:mod:`ledger.formats.receipts` (the format) because it only mirrors that format's rules, and a
test holds the two to accepting and refusing exactly the same documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from ledger.formats._receipt_fields import MAX_UINT64 as _MAX_UINT64
from ledger.formats._receipt_fields import to_address as _to_address
from ledger.formats.receipts import MAX_SIGNED_PROOF, Receipt, ReceiptFormatError
from ml.hashing import canonical_json

__all__ = ["parse_receipt"]

_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX65 = re.compile(r"0x[0-9a-fA-F]{130}")
_BYTES32_FIELDS = ("receipt_id", "model_hash", "input_hash", "output_hash")


@lru_cache(maxsize=256)
def _service_address(value: str) -> str:
    """A receipt's ``service`` field, checked and checksummed (cached: a batch has one)."""
    return _to_address(value, "service")


def _signed_fields(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """The format fields of a well-formed document with all three (``{}`` for format 1 with
    both nulls, as the API shows one), else None. Raises LookupError for anything unusual."""
    if "format" not in fields:
        return None
    form, root, proof = fields["format"], fields["signed_root"], fields["signed_proof"]
    if type(form) is int and form == 1 and root is None and proof is None:
        return {}
    if type(form) is not int or form != 2 or type(root) is not str or type(proof) is not list:
        raise LookupError("format")
    if not _HEX32.fullmatch(root) or len(proof) > MAX_SIGNED_PROOF:
        raise LookupError("signed_root")
    nodes = []
    for node in proof:
        if type(node) is not str or not _HEX32.fullmatch(node):
            raise LookupError("signed_proof")
        nodes.append(bytes.fromhex(node[2:]))
    return {"format": 2, "signed_root": bytes.fromhex(root[2:]), "signed_proof": tuple(nodes)}


def parse_receipt(fields: Mapping[str, Any]) -> Receipt:
    """The receipt whose fields are ``fields`` (exactly :class:`Receipt`'s), as
    ``Receipt.model_validate`` would build it, but a few times faster for the common,
    well-formed case: a bulk audit parses a hundred thousand of them. Anything unusual (a
    missing or extra field, bytes given as bytes, an upper-case prefix) goes through
    ``model_validate`` itself, so the two accept and refuse exactly the same documents (a test
    holds them to it). The output is not hashed here: verification does that once.

    Raises:
        ReceiptFormatError: a field is missing or malformed (``model_validate``'s message).
    """
    try:
        count, signed = len(fields), _signed_fields(fields)
        if count == 8 or (count == 11 and signed is not None):
            values = {}
            for name in _BYTES32_FIELDS:
                text = fields[name]
                if type(text) is not str or not _HEX32.fullmatch(text):
                    raise LookupError(name)
                values[name] = bytes.fromhex(text[2:])
            signature, issued_at, service = (
                fields["signature"], fields["issued_at"], fields["service"]
            )  # fmt: skip
            if type(signature) is not str or not _HEX65.fullmatch(signature):
                raise LookupError("signature")
            if type(issued_at) is not int or not 0 <= issued_at <= _MAX_UINT64:
                raise LookupError("issued_at")
            if type(service) is not str:
                raise LookupError("service")
            output = fields["output"]
            canonical_json(output)  # the one rule pydantic checks on it
            return Receipt.model_construct(
                **values,
                output=output,
                issued_at=issued_at,
                service=_service_address(service),
                signature=bytes.fromhex(signature[2:]),
                **(signed or {}),
            )
    except (LookupError, ValueError):
        pass  # not the common case: let pydantic say exactly what is wrong
    try:
        return Receipt.model_validate(dict(fields))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'receipt'}: {e['msg']}" for e in exc.errors()
        )
        raise ReceiptFormatError(f"malformed receipt: {problems}") from None
