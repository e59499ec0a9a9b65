"""One-off signing and a raising self-check of a receipt, for the receipt tests only.

The service signs through a long-lived :class:`ledger.formats.receipt_signing.ReceiptSigner`
and verifies through :func:`ledger.verify.verify_receipt` (a report of named checks against the
chain); these two shortcuts were production code used by nothing but tests, so they live here now.
"""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address

from ledger.formats.receipt_signing import ReceiptSigner, recover_signer
from ledger.formats.receipts import Receipt, ReceiptDomain, ReceiptError

__all__ = ["SignerMismatch", "sign_receipt", "verify_receipt"]


class SignerMismatch(ReceiptError):
    """A signature is valid but was made by someone other than the expected signer."""


def sign_receipt(
    *,
    model_hash: bytes | str,
    input_hash: bytes | str,
    output: Any,
    private_key: bytes | str,
    domain: ReceiptDomain,
    receipt_id: bytes | str | None = None,
    issued_at: int | None = None,
) -> Receipt:
    """Sign one receipt with a signer made for the occasion; ``service`` is the key's address."""
    return ReceiptSigner(private_key, domain).sign(
        model_hash=model_hash,
        input_hash=input_hash,
        output=output,
        receipt_id=receipt_id,
        issued_at=issued_at,
    )


def verify_receipt(
    receipt: Receipt, domain: ReceiptDomain, *, expected_signer: str | None = None
) -> None:
    """Raise unless the receipt is intact and signed by its service (and the expected signer).

    Raises:
        OutputHashMismatch: the output does not hash to ``output_hash``.
        InvalidSignatureError: the signature is malformed.
        SignerMismatch: the signer is not ``receipt.service`` or not ``expected_signer``.
    """
    # 1. The output is the one that was hashed.
    receipt.check_output_hash()
    # 2. The signature covers these fields and was made by the address the receipt names.
    signer = recover_signer(receipt, domain)
    if signer != receipt.service:
        raise SignerMismatch(f"receipt names service {receipt.service}, but {signer} signed it")
    # 3. That address is the one the verifier trusts.
    if expected_signer is not None:
        expected = to_checksum_address(expected_signer)
        if signer != expected:
            raise SignerMismatch(f"expected a receipt signed by {expected}, got {signer}")
