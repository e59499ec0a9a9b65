"""Receipts of format 2: a request's receipts under one signed Merkle root, each with its proof.

Held to independent implementations: eth-account recovers the signer from the EIP-712 message
:func:`typed_data` gives, the npm ``@openzeppelin/merkle-tree`` library builds the same root
from the receipts' leaves and accepts every receipt's ``signed_proof`` (and refuses a forged
one). Every field a receipt signs, changed alone, makes the signature fail; the texts the
issuing path writes are exactly ``Receipt.to_json`` and the canonical ``model_dump``; the fast
parser and the general one agree; the hash-only tree is the standard tree.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from ledger.formats.merkle import LeafHashTree, StandardMerkleTree, verify_proof
from ledger.formats.receipt_parsing import parse_receipt
from ledger.formats.receipt_signing import ReceiptSigner, recover_signer
from ledger.formats.receipts import (
    RECEIPT_LEAF_ENCODING,
    InvalidSignatureError,
    Receipt,
    ReceiptDomain,
    ReceiptFormatError,
    input_hash,
    receipt_leaf,
    receipt_leaf_hash,
    root_digest,
    signed_root_of,
    typed_data,
)
from ml.hashing import canonical_json, to_hex
from tests.ledger._merkle_js import RECEIPT_TREE_JS, run_js

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
DOMAIN = ReceiptDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
SIGNER = ReceiptSigner(KEY, DOMAIN)
MODEL = bytes.fromhex("ab" * 32)
OUTPUTS: list[Any] = [1.5, 2, "yes", {"label": 1, "probabilities": {"0": 0.25, "1": 0.75}}, None]


def _request(outputs: list[Any] = OUTPUTS, issued_at: int = 1_800_000_000) -> Any:
    rows = [{"x": i, "y": float(i) / 3} for i in range(len(outputs))]
    return SIGNER.sign_request(
        model_hash=MODEL,
        input_hashes=[input_hash(row) for row in rows],
        outputs=outputs,
        issued_at=issued_at,
    )


def test_every_receipt_of_a_request_verifies_on_its_own() -> None:
    signed = _request()
    receipts = signed.receipts()
    assert len({r.receipt_id for r in receipts}) == len(receipts) == len(OUTPUTS)
    for receipt, output in zip(receipts, OUTPUTS, strict=True):
        assert receipt.format == 2 and receipt.signed_root == signed.root
        assert receipt.output == output
        receipt.check_output_hash()
        assert signed_root_of(receipt) == signed.root
        assert recover_signer(receipt, DOMAIN) == SIGNER.address
        # one signature for the whole request
        assert receipt.signature == signed.signature


def test_eth_account_recovers_the_signer_from_the_typed_data() -> None:
    receipt = _request().receipt(2)
    message = encode_typed_data(full_message=typed_data(receipt, DOMAIN))
    assert Account.recover_message(message, signature=receipt.signature) == SIGNER.address
    # the digest eth-account signs is the one ours signs
    digest = keccak(b"\x19" + message.version + message.header + message.body)
    assert root_digest(DOMAIN, receipt.signed_root or b"") == digest


def test_openzeppelin_builds_the_same_root_and_accepts_every_proof() -> None:
    receipts = _request().receipts()
    values = [_js_leaf(r) for r in receipts]
    forged = _js_leaf(receipts[0])
    forged[3] = to_hex(bytes(32))  # another output hash, with the genuine proof
    proofs = [[to_hex(n) for n in r.signed_proof or ()] for r in receipts]
    checks = [{"value": v, "proof": p} for v, p in zip(values, proofs, strict=True)]
    checks.append({"value": forged, "proof": proofs[0]})
    [result] = run_js(
        RECEIPT_TREE_JS,
        [{"values": values, "leafEncoding": list(RECEIPT_LEAF_ENCODING), "checks": checks}],
        timeout=120,
    )
    assert "error" not in result, result
    assert result["root"] == to_hex(receipts[0].signed_root or b"")
    assert result["checks"] == [True] * len(receipts) + [False]


def _js_leaf(receipt: Receipt) -> list[Any]:
    leaf = receipt_leaf(receipt)
    leaf[4] = str(leaf[4])
    return leaf


SIGNED_FIELDS = {
    "receipt_id": os.urandom(32),
    "model_hash": os.urandom(32),
    "input_hash": os.urandom(32),
    "issued_at": 1_800_000_001,
    "service": "0x" + "12" * 20,
    "signed_root": os.urandom(32),
}


@pytest.mark.parametrize("field", [*SIGNED_FIELDS, "output", "signed_proof", "signature"])
def test_changing_any_field_breaks_the_receipt(field: str) -> None:
    signed = _request()
    receipt = signed.receipt(1)
    if field == "output":  # and its hash with it, so that only the signature can tell
        forged = receipt.model_copy(update={"output": 7.0, "output_hash": os.urandom(32)})
    elif field == "signed_proof":
        proof = list(receipt.signed_proof or ())
        proof[0] = os.urandom(32)
        forged = receipt.model_copy(update={"signed_proof": tuple(proof)})
    elif field == "signature":
        forged = receipt.model_copy(update={"signature": _request().signature})
    else:
        forged = receipt.model_copy(update={field: SIGNED_FIELDS[field]})
    try:
        signer = recover_signer(forged, DOMAIN)
    except InvalidSignatureError as exc:
        assert "signed_proof" in str(exc) or "signature" in str(exc)
    else:
        assert signer != forged.service


def test_a_proof_from_another_receipt_of_the_request_fails() -> None:
    receipts = _request().receipts()
    forged = receipts[0].model_copy(update={"signed_proof": receipts[1].signed_proof})
    with pytest.raises(InvalidSignatureError, match="signed_proof lead to root"):
        recover_signer(forged, DOMAIN)


def test_a_format_2_signature_cannot_pass_as_format_1_nor_the_reverse() -> None:
    receipt = _request().receipt(0)
    as_format_1 = receipt.model_copy(
        update={"format": 1, "signed_root": None, "signed_proof": None}
    )
    assert recover_signer(as_format_1, DOMAIN) != SIGNER.address
    single = SIGNER.sign(model_hash=MODEL, input_hash=os.urandom(32), output=1.0)
    leaf = receipt_leaf_hash(single)
    as_format_2 = single.model_copy(update={"format": 2, "signed_root": leaf, "signed_proof": ()})
    assert recover_signer(as_format_2, DOMAIN) != SIGNER.address


def test_a_request_of_one_row_has_an_empty_proof() -> None:
    [receipt] = _request([3.25]).receipts()
    assert receipt.signed_proof == () and receipt.signed_root == receipt_leaf_hash(receipt)
    assert recover_signer(receipt, DOMAIN) == SIGNER.address


def test_the_issued_texts_are_the_receipts_canonical_json() -> None:
    signed = _request()
    inputs = [json.dumps({"i": i}) for i in range(len(OUTPUTS))]
    issued = signed.issued(inputs)
    for item, receipt, text in zip(issued, signed.receipts(), inputs, strict=True):
        assert item.body == receipt.to_json()
        assert item.body.encode() == canonical_json(receipt.model_dump(mode="json"))
        assert Receipt.from_json(item.body) == receipt
        assert item.leaf == receipt_leaf_hash(receipt)
        assert (item.receipt_id, item.model_hash, item.input) == (
            to_hex(receipt.receipt_id),
            to_hex(MODEL),
            text,
        )


def test_the_fast_parser_and_pydantic_agree_on_format_2() -> None:
    document = json.loads(_request().receipt(3).to_json())
    assert parse_receipt(document) == Receipt.model_validate(document)
    # as the API shows a format-1 receipt: explicit format 1 and null format-2 fields
    single = SIGNER.sign(model_hash=MODEL, input_hash=os.urandom(32), output=1.0)
    shown = {**json.loads(single.to_json()), "format": 1, "signed_root": None, "signed_proof": None}
    assert parse_receipt(shown) == Receipt.model_validate(shown) == single
    for bad in (
        {**document, "format": 3},
        {**document, "format": "2"},
        {**document, "format": True},
        {**document, "signed_proof": None},
        {**document, "signed_root": None},
        {**document, "signed_proof": [document["signed_root"]] * 33},
        {**document, "signed_proof": ["0x12"]},
        {**shown, "signed_root": document["signed_root"]},
        {**shown, "format": None},
    ):
        with pytest.raises(ReceiptFormatError):
            parse_receipt(bad)
        with pytest.raises(ReceiptFormatError):
            Receipt.from_json(bad)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 100, 1025])
def test_the_hash_only_tree_is_the_standard_tree(n: int) -> None:
    values = [[os.urandom(32), i] for i in range(n)]
    standard = StandardMerkleTree.of(values, ["bytes32", "uint256"])
    hashes = [standard.leaf_hash_at(i) for i in range(n)]
    tree = LeafHashTree(hashes)
    assert tree.root == standard.root and len(tree) == n
    for i in range(n):
        assert tree.proof(i) == standard.proof(i)
        assert verify_proof(tree.root, hashes[i], tree.proof(i))
    assert tree.proofs() == [standard.proof(i) for i in range(n)]


def test_sign_request_refuses_what_it_cannot_sign() -> None:
    with pytest.raises(ReceiptFormatError):
        SIGNER.sign_request(model_hash=MODEL, input_hashes=[], outputs=[])
    with pytest.raises(ReceiptFormatError):
        SIGNER.sign_request(model_hash=MODEL, input_hashes=[b"1" * 32], outputs=[1.0, 2.0])
    with pytest.raises(ReceiptFormatError):
        SIGNER.sign_request(model_hash=MODEL, input_hashes=[b"short"], outputs=[1.0])
    with pytest.raises(ValueError):  # no canonical form: nothing signed
        SIGNER.sign_request(model_hash=MODEL, input_hashes=[b"1" * 32], outputs=[float("nan")])


def test_outputs_are_kept_as_detached_copies() -> None:
    output = {"label": 1, "probabilities": {"1": 0.5}}
    signed = _request([output])
    output["label"] = 2
    assert signed.receipt(0).output == {"label": 1, "probabilities": {"1": 0.5}}


def test_requests_signed_in_several_threads_at_once_all_verify() -> None:
    """Each thread keeps its own native keccak state across requests: requests signed in four
    threads at once give leaves and proofs that are each receipt's own."""

    def sign_many(thread: int) -> list[Receipt]:
        receipts = []
        for k in range(30):
            outputs = [float(thread * 1000 + k * 10 + i) for i in range(1 + k % 7)]
            receipts += _request(outputs, issued_at=1_800_000_000 + k).receipts()
        return receipts

    with ThreadPoolExecutor(4) as pool:
        signed = [r for batch in pool.map(sign_many, range(4)) for r in batch]
    assert len(signed) == 4 * sum(1 + k % 7 for k in range(30))
    for receipt in signed:
        leaf = receipt_leaf_hash(receipt)
        assert verify_proof(receipt.signed_root, leaf, receipt.signed_proof)
        assert recover_signer(receipt, DOMAIN) == SIGNER.address
