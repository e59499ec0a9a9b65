"""Signing prediction receipts and recovering their signer: secp256k1 through ``coincurve``,
over the EIP-712 digest that :mod:`ledger.formats.receipts` defines.

Why apart from the format: the format (fields, digest, leaf) is what an auditor re-implements;
this is what holds a key. The service keeps one :class:`ReceiptSigner` on its prediction path;
verification calls :func:`recover_signer` (``tests/ledger/test_receipts.py`` checks both
against eth-account's ``sign_typed_data``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from coincurve import PrivateKey, PublicKey
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from ledger.formats import _treehash
from ledger.formats._receipt_fields import to_bytes as _to_bytes
from ledger.formats._receipt_fields import to_uint64 as _to_uint64
from ledger.formats.merkle import LeafHashTree
from ledger.formats.receipt_requests import SignedRequest
from ledger.formats.receipts import (
    InvalidSignatureError,
    Receipt,
    ReceiptDomain,
    ReceiptFormatError,
    _digest,
    new_receipt_id,
    new_receipt_ids,
    receipt_digest,
    root_digest,
    signed_root_of,
)
from ml.hashing import canonical_json, canonical_json_values, to_hex

__all__ = ["ReceiptSigner", "recover_root_signer", "recover_signer", "signing_domain"]

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2


def _address_of(public_key: PublicKey) -> str:
    return _address_of_key(public_key.format(compressed=False))


@lru_cache(maxsize=1024)
def _address_of_key(uncompressed: bytes) -> str:
    """The checksum address of an uncompressed public key (cached: a service signs with one
    key, and the keccak plus the checksum cost a third of a recovery)."""
    return to_checksum_address(keccak(uncompressed[1:])[-20:])


class ReceiptSigner:
    """Signs receipts with one key for one domain; keeps the parsed key for speed.

    The service's prediction path keeps one of these for as long as it runs.
    """

    __slots__ = ("_key", "address", "domain")

    def __init__(self, private_key: bytes | str, domain: ReceiptDomain) -> None:
        try:
            self._key = PrivateKey(_to_bytes(private_key, 32, "the private key"))
        except ValueError as exc:
            # coincurve rejects 0 and keys >= the curve order; do not echo the key.
            raise ReceiptFormatError(f"not a valid secp256k1 private key ({exc})") from None
        self.address: str = _address_of(self._key.public_key)
        self.domain = domain

    def __repr__(self) -> str:
        return f"ReceiptSigner(address={self.address}, chain_id={self.domain.chain_id})"

    def sign(
        self,
        *,
        model_hash: bytes | str,
        input_hash: bytes | str,
        output: Any,
        receipt_id: bytes | str | None = None,
        issued_at: int | None = None,
    ) -> Receipt:
        """Sign a receipt for ``output`` (a fresh random id and the current time by default).

        Raises:
            CanonicalJsonError: ``output`` has no canonical JSON form (NaN, bytes...).
            ReceiptFormatError: a hash, the id or the time is malformed.
        """
        canonical = canonical_json(output)
        fields = {
            "receipt_id": _to_bytes(
                new_receipt_id() if receipt_id is None else receipt_id, 32, "receipt_id"
            ),
            "model_hash": _to_bytes(model_hash, 32, "model_hash"),
            "input_hash": _to_bytes(input_hash, 32, "input_hash"),
            # Keep a detached copy of exactly what was hashed, not the caller's object.
            "output": json.loads(canonical),
            "output_hash": hashlib.sha256(canonical).digest(),
            "issued_at": _to_uint64(
                int(time.time()) if issued_at is None else issued_at, "issued_at"
            ),
            "service": self.address,
        }
        digest = _digest(
            self.domain,
            fields["receipt_id"],
            fields["model_hash"],
            fields["input_hash"],
            fields["output_hash"],
            fields["issued_at"],
            self.address,
        )
        rsv = self._key.sign_recoverable(digest, hasher=None)
        signature = rsv[:64] + bytes([27 + rsv[64]])
        # Every field is validated above, so skip pydantic's second pass (hot path).
        return Receipt.model_construct(**fields, signature=signature)

    def sign_request(
        self,
        *,
        model_hash: bytes,
        input_hashes: Sequence[bytes],
        outputs: Sequence[Any],
        issued_at: int | None = None,
    ) -> SignedRequest:
        """Sign the receipts of one request at once (format 2): one fresh id per row, every
        receipt a leaf of one tree, one signature over its root.

        ``input_hashes`` are 32 bytes each (the rows' :func:`~ledger.formats.receipts.
        input_hash`), one per output.

        Raises:
            CanonicalJsonError: an output has no canonical JSON form (NaN, bytes...).
            ReceiptFormatError: a hash or the time is malformed, or there are no rows.
        """
        model_hash = _to_bytes(model_hash, 32, "model_hash")
        n = len(outputs)
        if n == 0 or len(input_hashes) != n:
            raise ReceiptFormatError(f"{len(input_hashes)} input hash(es) for {n} output(s)")
        if set(map(type, input_hashes)) != _BYTES or set(map(len, input_hashes)) != _LENGTH_32:
            for digest in input_hashes:  # says which one is wrong
                _to_bytes(digest, 32, "input_hash")
        when = _to_uint64(int(time.time()) if issued_at is None else issued_at, "issued_at")
        receipt_ids = new_receipt_ids(n)
        texts = canonical_json_values(outputs)
        # A receipt keeps a detached copy of exactly what was hashed, not the caller's object.
        kept = [
            o if type(o) in _IMMUTABLE else json.loads(t)
            for o, t in zip(outputs, texts, strict=True)
        ]
        output_hashes = [hashlib.sha256(text).digest() for text in texts]
        tail = when.to_bytes(32, "big") + bytes(12) + bytes.fromhex(self.address[2:])
        hashed = _treehash.encoded_leaves(
            b"".join(
                receipt_id + model_hash + input_hash + output_hash + tail
                for receipt_id, input_hash, output_hash in zip(
                    receipt_ids, input_hashes, output_hashes, strict=True
                )
            ),
            _LEAF_SIZE,
        )
        leaves = [hashed[k : k + 32] for k in range(0, 32 * n, 32)]
        tree = LeafHashTree(leaves)
        rsv = self._key.sign_recoverable(root_digest(self.domain, tree.root), hasher=None)
        return SignedRequest(
            model_hash=model_hash,
            issued_at=when,
            service=self.address,
            signature=rsv[:64] + bytes([27 + rsv[64]]),
            root=tree.root,
            receipt_ids=receipt_ids,
            input_hashes=list(input_hashes),
            outputs=kept,
            output_texts=[text.decode("utf-8") for text in texts],
            output_hashes=output_hashes,
            leaves=leaves,
            proofs=tree.proofs(),
        )


_IMMUTABLE = frozenset({float, int, str, bool, type(None)})
_LEAF_SIZE = 192  # a format 2 receipt leaf: id, model, input, output, time, service


_BYTES = {bytes}
_LENGTH_32 = {32}


def _recover(digest: bytes, signature: bytes) -> str:
    if len(signature) != 65:
        raise InvalidSignatureError(f"a signature is 65 bytes (r, s, v), got {len(signature)}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise InvalidSignatureError(f"signature v must be 27 or 28, got {v}")
    if not 0 < r < _SECP256K1_N or not 0 < s <= _HALF_N:
        raise InvalidSignatureError("signature r or s is out of range (high s is malleable)")
    try:
        public_key = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), digest, hasher=None
        )
    except Exception as exc:  # coincurve raises a bare Exception when recovery fails
        raise InvalidSignatureError(f"no public key recovers from this signature ({exc})") from None
    return _address_of(public_key)


def recover_signer(receipt: Receipt, domain: ReceiptDomain) -> str:
    """The checksum address whose key made ``receipt.signature`` over the receipt's fields.

    A valid signature by *someone* always recovers *some* address: compare it with
    ``receipt.service`` and with the address you trust (:func:`ledger.verify.verify_receipt`
    does both, against the chain's roles).

    Raises:
        InvalidSignatureError: the signature is malformed or malleable, or recovers no key;
            or (format 2) the receipt's leaf and ``signed_proof`` do not lead to its
            ``signed_root``, so its fields are not what was signed.
    """
    if receipt.format == 2:
        reached = signed_root_of(receipt)
        if reached != receipt.signed_root:
            raise InvalidSignatureError(
                f"the receipt's leaf and signed_proof lead to root {to_hex(reached)}, not to the "
                f"signed root {to_hex(receipt.signed_root or b'')}: its fields were not signed"
            )
        return _root_signer(receipt.signed_root or b"", receipt.signature, domain)
    return _recover(receipt_digest(receipt, domain), receipt.signature)


def recover_root_signer(root: bytes, signature: bytes, domain: ReceiptDomain) -> str:
    """Who signed a request's ``root`` (format 2), for a verifier that folded the receipt's
    proof itself (:func:`recover_signer` does both). Cached per root and signature.

    Raises:
        InvalidSignatureError: the signature is malformed or malleable, or recovers no key.
    """
    return _root_signer(root, signature, domain)


@lru_cache(maxsize=4096)
def _root_signer(root: bytes, signature: bytes, domain: ReceiptDomain) -> str:
    """Who signed a request's root (cached: the request's hundred receipts share one, and a
    bulk audit then recovers once per request, not once per receipt)."""
    return _recover(root_digest(domain, root), signature)


def signing_domain(receipt: Receipt, domains: Sequence[ReceiptDomain]) -> ReceiptDomain | None:
    """The first of ``domains`` (a ledger's generations, newest first) under which
    ``receipt``'s signature recovers its own ``service``: the generation that served it, which
    its evidence bundle names. None when none does (a forged or damaged receipt)."""
    for domain in domains:
        try:
            if recover_signer(receipt, domain) == receipt.service:
                return domain
        except InvalidSignatureError:
            return None
    return None
