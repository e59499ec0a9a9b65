"""ledger.formats.receipts: EIP-712 prediction receipts.

The fast path (our own digest, coincurve signing) is checked against eth-account's
``encode_typed_data`` / ``sign_typed_data``, and tampering with any part of a receipt must show.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

import ledger.formats.receipts
from ledger.errors import LedgerError
from ledger.formats.merkle import StandardMerkleTree, verify_proof
from ledger.formats.receipt_parsing import parse_receipt
from ledger.formats.receipt_signing import ReceiptSigner, recover_signer
from ledger.formats.receipts import (
    RECEIPT_LEAF_ENCODING,
    InvalidSignatureError,
    OutputHashMismatch,
    Receipt,
    ReceiptDomain,
    ReceiptError,
    ReceiptFormatError,
    input_hash,
    new_receipt_id,
    new_receipt_ids,
    output_hash,
    receipt_digest,
    receipt_leaf,
    receipt_leaf_hash,
    typed_data,
)
from ml.errors import CanonicalJsonError, MlError
from ml.hashing import canonical_json
from tests.ledger._receipt_helpers import SignerMismatch, sign_receipt, verify_receipt

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
SIGNER = Account.from_key(KEY).address
OTHER_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # secp256k1 order
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = ReceiptDomain(chain_id=31337, verifying_contract=CONTRACT)
MODEL = bytes.fromhex("aa" * 32)
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "species_hint": None, "id": 7}
OUTPUT = {
    "label": "setosa",
    "probabilities": {"setosa": 0.97, "versicolor": 0.02, "virginica": 0.01},
}


def _receipt(**overrides: Any) -> Receipt:
    fields: dict[str, Any] = {
        "model_hash": MODEL,
        "input_hash": input_hash(ROW),
        "output": OUTPUT,
        "private_key": KEY,
        "domain": DOMAIN,
        "receipt_id": bytes(range(32)),
        "issued_at": 1_700_000_000,
    }
    fields.update(overrides)
    return sign_receipt(**fields)


def _eth_account_digest(message: dict[str, Any]) -> bytes:
    signable = encode_typed_data(full_message=message)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def test_sign_then_recover_gives_the_signer() -> None:
    receipt = _receipt()
    assert receipt.service == SIGNER
    assert recover_signer(receipt, DOMAIN) == SIGNER
    verify_receipt(receipt, DOMAIN, expected_signer=SIGNER)
    verify_receipt(receipt, DOMAIN, expected_signer=SIGNER.lower())


def test_fields_are_what_was_asked_for() -> None:
    receipt = _receipt()
    assert receipt.receipt_id == bytes(range(32))
    assert receipt.model_hash == MODEL
    assert receipt.input_hash == input_hash(ROW)
    assert receipt.output == OUTPUT
    assert receipt.output_hash == output_hash(OUTPUT)
    assert receipt.issued_at == 1_700_000_000
    assert len(receipt.signature) == 65
    assert receipt.signature[64] in (27, 28)


def test_defaults_are_a_fresh_id_and_the_current_time() -> None:
    a = sign_receipt(model_hash=MODEL, input_hash=MODEL, output=1, private_key=KEY, domain=DOMAIN)
    b = sign_receipt(model_hash=MODEL, input_hash=MODEL, output=1, private_key=KEY, domain=DOMAIN)
    assert a.receipt_id != b.receipt_id
    assert abs(a.issued_at - b.issued_at) <= 1
    assert len(new_receipt_id()) == 32


def test_receipt_ids_are_time_ordered_and_random_after_the_time() -> None:
    """The issuing time in microseconds, then 24 random bytes: a later batch sorts after an
    earlier one (the book's id index grows at its end), and no two ids are equal."""
    before = time.time_ns() // 1000
    first = new_receipt_ids(50)
    time.sleep(0.002)
    second = new_receipt_ids(50)
    after = time.time_ns() // 1000
    ids = first + second
    assert len(set(ids)) == 100 and all(len(i) == 32 for i in ids)
    assert len({i[8:] for i in ids}) == 100  # the random parts differ too
    assert all(before <= int.from_bytes(i[:8], "big") <= after for i in ids)
    assert max(first) < min(second)


@settings(max_examples=60, deadline=None)
@given(
    receipt_id=st.binary(min_size=32, max_size=32),
    model_hash=st.binary(min_size=32, max_size=32),
    inputs=st.dictionaries(
        st.text(max_size=8),
        st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    ),
    output=st.integers() | st.text() | st.dictionaries(st.text(max_size=5), st.floats(0, 1)),
    issued_at=st.integers(0, 2**64 - 1),
    chain_id=st.integers(1, 2**256 - 1),
    contract=st.binary(min_size=20, max_size=20),
    key=st.integers(1, N - 1).map(lambda k: k.to_bytes(32, "big")),
)
def test_digest_and_signature_equal_eth_accounts(
    receipt_id: bytes,
    model_hash: bytes,
    inputs: dict[str, Any],
    output: Any,
    issued_at: int,
    chain_id: int,
    contract: bytes,
    key: bytes,
) -> None:
    domain = ReceiptDomain(chain_id, "0x" + contract.hex())
    receipt = sign_receipt(
        receipt_id=receipt_id,
        model_hash=model_hash,
        input_hash=input_hash(inputs),
        output=output,
        issued_at=issued_at,
        private_key=key,
        domain=domain,
    )
    message = typed_data(receipt, domain)
    assert receipt_digest(receipt, domain) == _eth_account_digest(message)
    # Deterministic (RFC 6979) low-s signatures: the same bytes as eth-account's.
    assert receipt.signature == Account.sign_typed_data(key, full_message=message).signature
    assert recover_signer(receipt, domain) == Account.from_key(key).address


_CHANGES = {
    "receipt_id": bytes(32),
    "model_hash": bytes.fromhex("bb" * 32),
    "input_hash": input_hash({**ROW, "id": 8}),
    "output_hash": output_hash("versicolor"),
    "issued_at": 1_700_000_001,
    "service": Account.from_key(OTHER_KEY).address,
}


@pytest.mark.parametrize("field", sorted(_CHANGES))
def test_changing_any_signed_field_changes_the_recovered_signer(field: str) -> None:
    receipt = _receipt()
    forged = receipt.model_copy(update={field: _CHANGES[field]})
    assert recover_signer(forged, DOMAIN) != receipt.service
    with pytest.raises(ReceiptError):
        verify_receipt(forged, DOMAIN)


@pytest.mark.parametrize(
    "domain",
    [
        ReceiptDomain(1, CONTRACT),
        ReceiptDomain(31337, "0x" + "11" * 20),
    ],
    ids=["other-chain", "other-contract"],
)
def test_a_receipt_does_not_verify_under_another_domain(domain: ReceiptDomain) -> None:
    receipt = _receipt()
    assert recover_signer(receipt, domain) != SIGNER
    with pytest.raises(SignerMismatch):
        verify_receipt(receipt, domain)


def test_a_receipt_by_another_key_fails_against_the_trusted_signer() -> None:
    receipt = _receipt(private_key=OTHER_KEY)
    verify_receipt(receipt, DOMAIN)  # intact and self-consistent...
    with pytest.raises(SignerMismatch, match=f"expected a receipt signed by {SIGNER}"):
        verify_receipt(receipt, DOMAIN, expected_signer=SIGNER)  # ...but not ours


def test_json_round_trip() -> None:
    receipt = _receipt()
    text = receipt.to_json()
    data = json.loads(text)
    assert data["receipt_id"] == "0x" + bytes(range(32)).hex()
    assert data["signature"] == "0x" + receipt.signature.hex()
    assert data["service"] == SIGNER
    for name in ("receipt_id", "model_hash", "input_hash", "output_hash", "signature"):
        assert data[name] == data[name].lower()
        assert data[name].startswith("0x")
    back = Receipt.from_json(text)
    assert back == receipt
    assert back.to_json() == text
    assert Receipt.from_json(text.encode()) == receipt
    assert Receipt.from_json(data) == receipt
    assert recover_signer(back, DOMAIN) == SIGNER


@pytest.mark.parametrize("output", [3.25, -1, "setosa", None, True, [1, 2], {"ü": {"b": [0.5]}}])
def test_json_round_trip_for_every_output_shape(output: Any) -> None:
    receipt = _receipt(output=output)
    back = Receipt.from_json(receipt.to_json())
    assert back.output == output
    verify_receipt(back, DOMAIN, expected_signer=SIGNER)


def test_a_tampered_output_is_caught() -> None:
    data = json.loads(_receipt().to_json())
    data["output"]["label"] = "virginica"
    with pytest.raises(OutputHashMismatch, match="output hashes to"):
        Receipt.from_json(data)
    # Built without from_json, the same receipt fails check_output_hash and verification.
    tampered = Receipt.model_validate(data)
    with pytest.raises(OutputHashMismatch):
        tampered.check_output_hash()
    with pytest.raises(OutputHashMismatch):
        verify_receipt(tampered, DOMAIN)


def test_the_receipt_keeps_its_own_copy_of_the_output() -> None:
    output = {"label": "setosa", "scores": [1, 2]}
    receipt = _receipt(output=output)
    output["scores"].append(3)
    receipt.check_output_hash()
    assert receipt.output == {"label": "setosa", "scores": [1, 2]}


def test_receipts_are_frozen() -> None:
    receipt = _receipt()
    with pytest.raises(ValueError, match="frozen"):
        receipt.issued_at = 0  # type: ignore[misc]


def test_canonical_json_hashes() -> None:
    assert input_hash({"b": 1, "a": "é"}) == hashlib.sha256('{"a":"é","b":1}'.encode()).digest()
    assert input_hash({"a": 1}) != input_hash({"a": 1.0})
    assert output_hash([1, {"y": 2, "x": None}]) == hashlib.sha256(b'[1,{"x":null,"y":2}]').digest()
    with pytest.raises(CanonicalJsonError, match=r"\$\.a is nan"):
        input_hash({"a": float("nan")})
    with pytest.raises(CanonicalJsonError, match="is a set"):
        output_hash({1, 2})
    with pytest.raises(CanonicalJsonError, match="an input row is a JSON object, got list"):
        input_hash(["not", "a", "row"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [{1: "a"}, {"label": "x", "probabilities": {0: 0.5}}, [{"ok": {True: 1}}], {None: 0}],
)
def test_an_output_with_a_non_string_key_is_refused_not_rewritten(bad: Any) -> None:
    # json.dumps would write {1: "a"} as {"1": "a"}: two values, one hash. Refused everywhere.
    with pytest.raises(CanonicalJsonError, match="non-string key"):
        output_hash(bad)
    with pytest.raises(CanonicalJsonError, match="non-string key"):
        input_hash({"row": bad})
    with pytest.raises(CanonicalJsonError, match="non-string key"):
        _receipt(output=bad)


def test_receipt_hashes_are_ml_hashings_canonical_json() -> None:
    for value in (ROW, OUTPUT, 3.25, [1, "é", None], {"z": {"b": [0.1, -0.0, 10**30]}}):
        assert output_hash(value) == hashlib.sha256(canonical_json(value)).digest()
    assert input_hash(ROW) == hashlib.sha256(canonical_json(ROW)).digest()


def test_receipt_leaf_goes_into_a_merkle_tree() -> None:
    receipts = [_receipt(receipt_id=bytes([i]) * 32, output=i) for i in range(5)]
    tree = StandardMerkleTree.of([receipt_leaf(r) for r in receipts], RECEIPT_LEAF_ENCODING)
    leaf = receipt_leaf(receipts[3])
    assert leaf == [
        "0x" + receipts[3].receipt_id.hex(),
        "0x" + MODEL.hex(),
        "0x" + receipts[3].input_hash.hex(),
        "0x" + receipts[3].output_hash.hex(),
        1_700_000_000,
        SIGNER,
    ]
    assert verify_proof(tree.root, tree.leaf_hash(leaf), tree.proof(3))
    json.dumps(leaf)  # JSON-ready as it is


def test_signer_object_matches_sign_receipt() -> None:
    signer = ReceiptSigner(KEY, DOMAIN)
    assert signer.address == SIGNER
    assert "0x4c08" not in repr(signer)  # never shows the key
    made = signer.sign(
        model_hash=MODEL,
        input_hash=input_hash(ROW),
        output=OUTPUT,
        receipt_id=bytes(range(32)),
        issued_at=1_700_000_000,
    )
    assert made == _receipt()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model_hash": b"\x00" * 31}, "model_hash must be 32 bytes"),
        ({"input_hash": "aa" * 32}, "input_hash must be 0x-prefixed hex"),
        ({"receipt_id": 5}, "receipt_id must be bytes or 0x-hex"),
        ({"issued_at": -1}, "issued_at must be an int"),
        ({"issued_at": 2**64}, "issued_at must be an int"),
        ({"issued_at": 1.5}, "issued_at must be an int"),
        ({"private_key": bytes(32)}, "not a valid secp256k1 private key"),
        ({"private_key": b"\x01" * 31}, "the private key must be 32 bytes"),
    ],
)
def test_sign_rejects_bad_fields(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ReceiptError, match=message):
        _receipt(**overrides)


@pytest.mark.parametrize("output", [float("inf"), {"p": float("nan")}, b"raw", {"s": {1}}])
def test_sign_rejects_an_output_with_no_canonical_form(output: Any) -> None:
    with pytest.raises(CanonicalJsonError, match="canonical JSON"):
        _receipt(output=output)


@pytest.mark.parametrize(
    ("chain_id", "contract", "message"),
    [
        (0, CONTRACT, "chain_id must be a positive int"),
        (True, CONTRACT, "chain_id must be a positive int"),
        (1, "0x1234", "20-byte 0x-hex address"),
        (1, CONTRACT.replace("F", "f", 1), "bad EIP-55 checksum"),
    ],
)
def test_bad_domains_are_rejected(chain_id: Any, contract: str, message: str) -> None:
    with pytest.raises(ReceiptFormatError, match=message):
        ReceiptDomain(chain_id, contract)


def test_domain_normalises_the_contract_address() -> None:
    assert ReceiptDomain(5, CONTRACT.lower()) == ReceiptDomain(5, CONTRACT)
    assert ReceiptDomain(5, CONTRACT.lower()).verifying_contract == CONTRACT


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"receipt_id": "0x1234"}, "receipt_id: Value error, a 32-byte value must be 32 bytes"),
        ({"signature": "0x00"}, "signature: Value error"),
        ({"service": "0x" + "ab" * 19}, "service: Value error"),
        ({"issued_at": "1700000000"}, "issued_at: Input should be a valid integer"),
        ({"extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)
def test_from_json_rejects_malformed_fields(change: dict[str, Any], message: str) -> None:
    data = json.loads(_receipt().to_json())
    data.update(change)
    with pytest.raises(ReceiptFormatError, match=message):
        Receipt.from_json(data)


def test_from_json_rejects_missing_fields_and_non_json() -> None:
    data = json.loads(_receipt().to_json())
    del data["signature"]
    with pytest.raises(ReceiptFormatError, match="signature: Field required"):
        Receipt.from_json(data)
    with pytest.raises(ReceiptFormatError, match="must be JSON"):
        Receipt.from_json("{")
    with pytest.raises(ReceiptFormatError, match="JSON object"):
        Receipt.from_json("[1]")


def _with_signature(receipt: Receipt, signature: bytes) -> Receipt:
    return receipt.model_copy(update={"signature": signature})


def test_malleable_and_malformed_signatures_are_rejected() -> None:
    receipt = _receipt()
    sig = receipt.signature
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    high_s = _with_signature(receipt, r + (N - s).to_bytes(32, "big") + bytes([55 - v]))
    with pytest.raises(InvalidSignatureError, match="high s"):
        recover_signer(high_s, DOMAIN)
    with pytest.raises(InvalidSignatureError, match="v must be 27 or 28"):
        recover_signer(_with_signature(receipt, sig[:64] + b"\x01"), DOMAIN)
    with pytest.raises(InvalidSignatureError, match="out of range"):
        recover_signer(_with_signature(receipt, bytes(32) + sig[32:]), DOMAIN)
    flipped_v = _with_signature(receipt, sig[:64] + bytes([55 - v]))
    assert _recovered_or_none(flipped_v) != SIGNER


def _recovered_or_none(receipt: Receipt) -> str | None:
    try:
        return recover_signer(receipt, DOMAIN)
    except InvalidSignatureError:
        return None


def test_numpy_scalars_hash_as_the_python_values_they_hold() -> None:
    np = pytest.importorskip("numpy")
    output = {"label": np.int64(2), "p": [np.float64(0.25), np.float32(0.5)], "ok": np.bool_(True)}
    plain = {"label": 2, "p": [0.25, 0.5], "ok": True}
    assert output_hash(output) == output_hash(plain)
    receipt = _receipt(output=output)
    assert receipt.output == plain
    assert type(receipt.output["label"]) is int
    verify_receipt(Receipt.from_json(receipt.to_json()), DOMAIN, expected_signer=SIGNER)
    with pytest.raises(CanonicalJsonError):
        output_hash(np.array([1, 2]))
    with pytest.raises(CanonicalJsonError):
        output_hash(np.float64("nan"))


def test_errors_are_value_errors_under_the_ledger_root() -> None:
    for cls in (
        ReceiptError,
        ReceiptFormatError,
        OutputHashMismatch,
        InvalidSignatureError,
    ):
        assert issubclass(cls, ValueError)
        assert issubclass(cls, LedgerError)
    # Canonical JSON has one error class, ml's: still a ValueError for generic callers.
    assert issubclass(CanonicalJsonError, ValueError)
    assert issubclass(CanonicalJsonError, MlError)


def test_a_malformed_output_in_a_receipt_document_is_a_format_error() -> None:
    data = json.loads(_receipt().to_json())
    data["output"] = {"x": float("nan")}
    with pytest.raises(ReceiptFormatError, match="output"):
        Receipt.from_json(data)


def test_test_only_helpers_left_production() -> None:
    for name in ("sign_receipt", "verify_receipt", "SignerMismatch", "CanonicalJSONError"):
        assert not hasattr(ledger.formats.receipts, name), name
    assert not hasattr(ledger.formats.receipts, "_canonical_json")


def test_importing_receipts_does_not_import_scikit_learn() -> None:
    # ledger knows nothing of scikit-learn: using ml.hashing must not pull it (or numpy) in.
    code = (
        "import sys, ledger.formats.receipts; "
        "print(sorted({'sklearn', 'numpy'} & set(sys.modules)))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# The bulk paths: parse_receipt and receipt_leaf_hash, held to the general ones
# ---------------------------------------------------------------------------------------------


def _validated(fields: dict[str, Any]) -> Receipt | str:
    """What ``Receipt.model_validate`` makes of ``fields``: the receipt, or "refused"."""
    try:
        return Receipt.model_validate(fields)
    except ValueError:
        return "refused"


def _parsed(fields: dict[str, Any]) -> Receipt | str:
    try:
        return parse_receipt(fields)
    except ReceiptFormatError:
        return "refused"


_GOOD = json.loads(_receipt().to_json())
_VARIANTS: list[tuple[str, Any]] = [
    ("receipt_id", "0x" + "AB" * 32),  # upper-case hex is accepted
    ("receipt_id", "0X" + "ab" * 32),
    ("receipt_id", "0x" + "ab" * 31),
    ("receipt_id", bytes(32)),
    ("model_hash", "ab" * 32),
    ("input_hash", 5),
    ("output_hash", None),
    ("signature", "0x" + "11" * 64),
    ("signature", "0x" + "1" * 130),
    ("issued_at", True),
    ("issued_at", 1.0),
    ("issued_at", -1),
    ("issued_at", 2**64),
    ("issued_at", "1700000000"),
    ("service", SIGNER.lower()),
    ("service", SIGNER.upper().replace("0X", "0x")),
    ("service", SIGNER[:-1] + ("a" if SIGNER[-1] != "a" else "b")),  # a bad checksum
    ("service", "0x1234"),
    ("output", {"x": float("nan")}),
    ("output", [1, {"k": (1, 2)}]),
    ("output", {1: "a"}),
]


@pytest.mark.parametrize(("name", "value"), _VARIANTS)
def test_parse_receipt_accepts_and_refuses_exactly_what_model_validate_does(
    name: str, value: Any
) -> None:
    fields = {**_GOOD, name: value}
    assert _parsed(fields) == _validated(fields)
    if isinstance(_validated(fields), Receipt):
        assert _parsed(fields).model_dump() == _validated(fields).model_dump()


def test_parse_receipt_on_missing_and_extra_fields() -> None:
    assert parse_receipt(_GOOD) == Receipt.model_validate(_GOOD)
    for broken in (
        {k: v for k, v in _GOOD.items() if k != "signature"},
        {**_GOOD, "status": "anchored"},
    ):
        assert _parsed(broken) == _validated(broken) == "refused"
    with pytest.raises(ReceiptFormatError, match="signature"):
        parse_receipt({k: v for k, v in _GOOD.items() if k != "signature"})


@settings(max_examples=50, deadline=None)
@given(
    output=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=6,
    ),
    issued_at=st.integers(min_value=0, max_value=2**64 - 1),
)
def test_receipt_leaf_hash_is_the_standard_leaf(output: Any, issued_at: int) -> None:
    from ledger.formats.merkle import leaf_hash

    receipt = ReceiptSigner(KEY, DOMAIN).sign(
        model_hash=MODEL, input_hash=input_hash(ROW), output=output, issued_at=issued_at
    )
    assert receipt_leaf_hash(receipt) == leaf_hash(RECEIPT_LEAF_ENCODING, receipt_leaf(receipt))
    assert parse_receipt(json.loads(receipt.to_json())) == receipt


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(output=_JSON_VALUES, issued_at=st.integers(min_value=0, max_value=2**64 - 1))
def test_to_json_and_json_fields_are_the_canonical_model_dump(output: Any, issued_at: int) -> None:
    receipt = ReceiptSigner(KEY, DOMAIN).sign(
        model_hash=MODEL, input_hash=input_hash(ROW), output=output, issued_at=issued_at
    )
    dumped = receipt.model_dump(mode="json")
    assert receipt.json_fields() == dumped
    assert receipt.to_json() == canonical_json(dumped).decode("utf-8")
    # A receipt built by validation (a tuple output, a lower-case service) writes the same text.
    fields = {**dumped, "service": dumped["service"].lower()}
    assert Receipt.model_validate(fields).to_json() == receipt.to_json()
