"""ledger.formats.merkle against its reference: the npm ``@openzeppelin/merkle-tree`` library
(v1.0.8).

The node script ``js/merkle_tree.mjs`` runs the real library on the same leaves; roots, every
proof, leaf hashes and ``standard-v1`` dumps must match byte for byte, in both directions
(``_standard_v1`` is the dump format). The encoder is checked against ``eth_abi``; Hypothesis
then checks the properties an auditor relies on: honest proofs verify, tampered ones do not.
Types the npm library takes but the ledger never uses (strings, arrays, tuples, other integer
sizes) are refused with ``LeafEncodingError``. Over 400 lines because every rejection is its own
case; the native keccak and the dump loader have their own files (``test_merkle_keccak``,
``test_merkle_standard_v1``).
"""

from __future__ import annotations

import json
import random
from functools import cache
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError
from ledger.formats.merkle import (
    SUPPORTED_TYPES,
    InvalidProofError,
    InvalidTreeError,
    LeafEncodingError,
    LeafIndexError,
    MerkleError,
    StandardMerkleTree,
    leaf_hash,
    process_proof,
    verify_proof,
)
from ml.hashing import to_hex
from tests.ledger import _standard_v1 as standard_v1
from tests.ledger._merkle_js import MERKLE_TREE_JS, js_json, run_js

UINT_BYTES = ["uint256", "bytes32"]  # the row leaf
RECEIPT = ["bytes32", "bytes32", "bytes32", "bytes32", "uint256", "address"]  # the receipt leaf
OTHER_STATIC = ["address", "uint256", "uint256", "bytes32", "address"]
STRING_UINT = ["string", "uint256"]  # the npm library's README example, refused here
SIZES = [1, 2, 3, 7, 64, 1000]


# ---------------------------------------------------------------------------------------------
# The JS oracle
# ---------------------------------------------------------------------------------------------


def _rng_bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "big")


def _address(rng: random.Random) -> str:
    return to_checksum_address(_rng_bytes(rng, 20))


def _leaves(encoding: list[str], n: int, seed: int) -> list[list[Any]]:
    rng = random.Random(f"{seed}-{n}-{encoding}")
    out: list[list[Any]] = []
    for i in range(n):
        if encoding == UINT_BYTES:
            out.append([rng.getrandbits(256) if i % 5 else i, _rng_bytes(rng, 32)])
        elif encoding == RECEIPT:
            hashes = [_rng_bytes(rng, 32) for _ in range(4)]
            out.append([*hashes, 1_700_000_000 + rng.getrandbits(20), _address(rng)])
        elif encoding == STRING_UINT:
            out.append([rng.choice(["", "a", "café", "预测"]), rng.getrandbits(64)])
        else:
            out.append(
                [
                    _address(rng),
                    rng.getrandbits(rng.choice([1, 64, 256])),
                    2**256 - 1 - i,
                    _rng_bytes(rng, 32),
                    _address(rng),
                ]
            )
    return out


CASES = [(enc, n) for enc in (UINT_BYTES, RECEIPT) for n in SIZES] + [
    (OTHER_STATIC, n) for n in (1, 5, 40)
]


@cache
def _oracle() -> dict[tuple[str, int], dict[str, Any]]:
    """One node run for every case (node starts once, not per test)."""
    jobs = [
        {"op": "of", "values": js_json(_leaves(enc, n, 1)), "leafEncoding": enc} for enc, n in CASES
    ]
    extra = {
        ("unsorted", 9): {
            "op": "of",
            "values": js_json(_leaves(UINT_BYTES, 9, 2)),
            "leafEncoding": UINT_BYTES,
            "sortLeaves": False,
        },
        ("string", 5): {
            "op": "of",
            "values": js_json(_leaves(STRING_UINT, 5, 1)),
            "leafEncoding": STRING_UINT,
        },
    }
    results = run_js(MERKLE_TREE_JS, [*jobs, *extra.values()])
    keyed = {(",".join(enc), n): r for (enc, n), r in zip(CASES, results, strict=False)}
    keyed.update(zip(extra, results[len(CASES) :], strict=True))
    return keyed


def _hexes(nodes: list[bytes]) -> list[str]:
    return [to_hex(n) for n in nodes]


@pytest.mark.parametrize(("encoding", "n"), CASES, ids=[f"{','.join(e)}-{n}" for e, n in CASES])
def test_same_root_proofs_and_dump_as_js(encoding: list[str], n: int) -> None:
    js = _oracle()[(",".join(encoding), n)]
    assert "error" not in js, js
    values = _leaves(encoding, n, 1)
    tree = StandardMerkleTree.of(values, encoding)

    assert len(tree) == n
    assert to_hex(tree.root) == js["root"]
    assert [_hexes(tree.proof(i)) for i in range(n)] == js["proofs"]
    assert _hexes([tree.leaf_hash_at(i) for i in range(n)]) == js["leafHashes"]
    assert _hexes([tree.leaf_hash(v) for v in values]) == js["leafHashes"]
    assert standard_v1.dump(tree) == js["dump"]


def test_unsorted_leaves_match_js() -> None:
    js = _oracle()[("unsorted", 9)]
    tree = StandardMerkleTree.of(_leaves(UINT_BYTES, 9, 2), UINT_BYTES, sort_leaves=False)
    assert to_hex(tree.root) == js["root"]
    assert [_hexes(tree.proof(i)) for i in range(9)] == js["proofs"]
    assert standard_v1.dump(tree) == js["dump"]


def test_js_loads_our_dump_and_we_load_its() -> None:
    ours = [StandardMerkleTree.of(_leaves(enc, n, 3), enc) for enc, n in CASES if n <= 64]
    results = run_js(MERKLE_TREE_JS, [{"op": "load", "dump": standard_v1.dump(t)} for t in ours])
    for tree, js in zip(ours, results, strict=True):
        assert "error" not in js, js
        assert js["root"] == to_hex(tree.root)
        assert js["proofs"] == [_hexes(tree.proof(i)) for i in range(len(tree))]
        # ...and the JS dump (the same JSON the library writes) loads back here.
        back = standard_v1.load(json.dumps(js["dump"]))
        assert back.root == tree.root
        assert [back.proof(i) for i in range(len(back))] == [
            tree.proof(i) for i in range(len(tree))
        ]


def test_js_rejects_a_dump_we_tampered_with() -> None:
    dump = standard_v1.dump(StandardMerkleTree.of(_leaves(UINT_BYTES, 4, 4), UINT_BYTES))
    dump["values"][0]["value"][0] = str(int(dump["values"][0]["value"][0]) + 1)
    [result] = run_js(MERKLE_TREE_JS, [{"op": "load", "dump": dump}])
    assert "error" in result
    with pytest.raises(InvalidTreeError, match="does not hash to tree node"):
        standard_v1.load(dump)


def test_a_string_tree_the_npm_library_builds_is_refused_here() -> None:
    js = _oracle()[("string", 5)]
    assert "error" not in js, js
    with pytest.raises(LeafEncodingError, match="unsupported leaf type 'string'"):
        StandardMerkleTree.of(_leaves(STRING_UINT, 5, 1), STRING_UINT)
    with pytest.raises(LeafEncodingError, match="unsupported leaf type 'string'"):
        standard_v1.load(js["dump"])


# ---------------------------------------------------------------------------------------------
# The hand-written encoder against eth_abi, the native keccak against eth_hash
# ---------------------------------------------------------------------------------------------

_addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
_STRATEGIES = {
    "uint256": st.integers(0, 2**256 - 1),
    "bytes32": st.binary(min_size=32, max_size=32),
    "address": _addresses,
}


@st.composite
def _encoding_and_value(draw: st.DrawFn) -> tuple[list[str], list[Any]]:
    types = draw(st.lists(st.sampled_from(SUPPORTED_TYPES), min_size=1, max_size=8))
    return types, [draw(_STRATEGIES[t]) for t in types]


@settings(max_examples=300, deadline=None)
@given(_encoding_and_value())
def test_leaf_hash_is_double_keccak_of_eth_abi_encode(case: tuple[list[str], list[Any]]) -> None:
    types, value = case
    expected = keccak(keccak(abi_encode(types, value)))
    assert leaf_hash(types, value) == expected
    tree = StandardMerkleTree.of([value], types)
    assert tree.root == expected
    # A value survives the JSON dump as the same leaf.
    assert standard_v1.load(standard_v1.dump(tree)).root == expected


def test_hex_and_string_inputs_hash_like_native_ones() -> None:
    encoding = ["uint256", "bytes32", "address", "uint256"]
    native = [2**200, b"\x01" * 32, b"\xaa" * 20, 7]
    as_text = [str(2**200), "0x" + "01" * 32, "0x" + "aa" * 20, "0x07"]
    other_forms = [2**200, bytearray(b"\x01" * 32), memoryview(b"\xaa" * 20), "7"]
    assert leaf_hash(encoding, native) == leaf_hash(encoding, as_text)
    assert leaf_hash(encoding, native) == leaf_hash(encoding, other_forms)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

_leaf_values = st.lists(
    st.tuples(st.integers(0, 2**256 - 1), st.binary(min_size=32, max_size=32)),
    min_size=1,
    max_size=40,
)


def _flip(node: bytes, bit: int) -> bytes:
    flipped = bytearray(node)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=_leaf_values, data=st.data())
def test_every_proof_verifies_and_any_bit_flip_fails(
    values: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    tree = StandardMerkleTree.of(values, UINT_BYTES)
    for i in range(len(tree)):
        leaf, proof = tree.leaf_hash_at(i), tree.proof(i)
        assert leaf == leaf_hash(UINT_BYTES, values[i])
        assert verify_proof(tree.root, leaf, proof)
        assert process_proof(leaf, proof) == tree.root
        assert verify_proof(to_hex(tree.root), to_hex(leaf), _hexes(proof))

    i = data.draw(st.integers(0, len(tree) - 1), label="index")
    leaf, proof = tree.leaf_hash_at(i), tree.proof(i)
    bit = data.draw(st.integers(0, 255), label="bit")
    assert not verify_proof(tree.root, _flip(leaf, bit), proof)
    assert not verify_proof(_flip(tree.root, bit), leaf, proof)
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1), label="proof element")
        tampered = [*proof[:j], _flip(proof[j], bit), *proof[j + 1 :]]
        assert not verify_proof(tree.root, leaf, tampered)
        assert not verify_proof(tree.root, leaf, proof[:-1])
        assert not verify_proof(tree.root, leaf, [*proof, proof[-1]])


@settings(max_examples=100, deadline=None)
@given(
    values=_leaf_values,
    extra=st.tuples(st.integers(0, 2**256 - 1), st.binary(min_size=32, max_size=32)),
)
def test_a_proof_from_another_tree_fails(
    values: list[tuple[int, bytes]], extra: tuple[int, bytes]
) -> None:
    tree = StandardMerkleTree.of(values, UINT_BYTES)
    other = StandardMerkleTree.of([*values, extra], UINT_BYTES)
    assert other.root != tree.root
    for i in range(len(tree)):
        assert verify_proof(other.root, other.leaf_hash_at(i), other.proof(i))
        assert not verify_proof(other.root, tree.leaf_hash_at(i), tree.proof(i))


@settings(max_examples=50, deadline=None)
@given(values=_leaf_values)
def test_dump_load_round_trip(values: list[tuple[int, bytes]]) -> None:
    tree = StandardMerkleTree.of(values, UINT_BYTES)
    back = standard_v1.load(json.loads(json.dumps(standard_v1.dump(tree))))
    assert back.root == tree.root
    assert standard_v1.dump(back) == standard_v1.dump(tree)
    assert [back.proof(i) for i in range(len(back))] == [tree.proof(i) for i in range(len(tree))]


def test_proof_index_is_the_position_in_the_original_values() -> None:
    values = [[n, bytes([n]) * 32] for n in range(10)]
    tree = StandardMerkleTree.of(values, UINT_BYTES)
    assert tree.leaf_encoding == tuple(UINT_BYTES)
    for i, value in enumerate(values):
        assert tree.values[i] == tuple(value)
        assert verify_proof(tree.root, leaf_hash(UINT_BYTES, value), tree.proof(i))


def test_duplicate_leaves_each_get_a_proof() -> None:
    values = [[1, b"\x00" * 32]] * 3
    tree = StandardMerkleTree.of(values, UINT_BYTES)
    positions = [v["treeIndex"] for v in standard_v1.dump(tree)["values"]]
    assert sorted(positions) == [2, 3, 4]
    assert all(verify_proof(tree.root, tree.leaf_hash_at(i), tree.proof(i)) for i in range(3))


def test_single_leaf_tree_root_is_the_leaf() -> None:
    tree = StandardMerkleTree.of([[1, b"\x00" * 32]], UINT_BYTES)
    assert tree.root == tree.leaf_hash_at(0)
    assert tree.proof(0) == []
    assert repr(tree) == f"StandardMerkleTree(root={to_hex(tree.root)}, leaves=1)"


# ---------------------------------------------------------------------------------------------
# Rejections
# ---------------------------------------------------------------------------------------------

GOOD = [1, b"\x00" * 32]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1], "expected 2 fields, got 1"),
        ([1, b"\x00" * 32, 3], "expected 2 fields, got 3"),
        ("ab", "must be a list or tuple"),
        ([-1, b"\x00" * 32], "out of range for uint256"),
        ([2**256, b"\x00" * 32], "out of range for uint256"),
        (["-0x1", b"\x00" * 32], "out of range for uint256"),
        ([True, b"\x00" * 32], "bool"),
        ([1.0, b"\x00" * 32], "expected an integer, got float"),
        (["12a", b"\x00" * 32], "integer string"),
        ([1, b"\x00" * 31], "needs exactly 32 bytes, got 31"),
        ([1, "00" * 32], "0x-prefixed hex"),
        ([1, "0x" + "0" * 63], "0x-prefixed hex"),
        ([1, None], "expected bytes or a 0x-hex string, got NoneType"),
    ],
)
def test_values_that_do_not_fit_are_rejected(value: Any, message: str) -> None:
    with pytest.raises(LeafEncodingError, match=message):
        StandardMerkleTree.of([GOOD, value], UINT_BYTES)
    with pytest.raises(LeafEncodingError, match=message):
        leaf_hash(UINT_BYTES, value)


def test_rejection_names_the_value() -> None:
    with pytest.raises(LeafEncodingError, match=r"value 1 .*\(uint256,bytes32\)"):
        StandardMerkleTree.of([GOOD, [1, b""]], UINT_BYTES)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0x" + "ab" * 19, "20-byte hex address"),
        ("ab" * 21, "20-byte hex address"),
        ("0x52908400098527886e0F7030069857D2E4169EE7", "valid checksum"),
        ("0x" + "zz" * 20, "not a hex address"),
        (b"\x01" * 19, "an address is 20 bytes"),
        (1, "expected bytes or a 0x-hex string, got int"),
    ],
)
def test_bad_addresses_are_rejected(value: Any, message: str) -> None:
    with pytest.raises(LeafEncodingError, match=message):
        leaf_hash(["address"], [value])
    with pytest.raises(LeafEncodingError, match=message):
        StandardMerkleTree.of([[value]], ["address"])


def test_checksummed_lowercase_and_uppercase_addresses_are_accepted() -> None:
    address = "0x52908400098527886E0F7030069857D2E4169EE7"
    expected = leaf_hash(["address"], [bytes.fromhex(address[2:])])
    assert leaf_hash(["address"], [address]) == expected
    assert leaf_hash(["address"], [address.lower()]) == expected
    assert leaf_hash(["address"], ["0x" + address[2:].upper()]) == expected


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        # Types the npm library (and abi.encode) accept, but ledger leaves never use.
        (["string"], "unsupported leaf type 'string'"),
        (["bytes"], "unsupported leaf type 'bytes'"),
        (["bool"], "unsupported leaf type 'bool'"),
        (["uint8"], "unsupported leaf type 'uint8'"),
        (["uint"], "unsupported leaf type 'uint'"),
        (["int256"], "unsupported leaf type 'int256'"),
        (["bytes4"], "unsupported leaf type 'bytes4'"),
        (["uint256[]"], r"unsupported leaf type 'uint256\[\]'"),
        (["bytes32[2]"], r"unsupported leaf type 'bytes32\[2\]'"),
        (["(uint256,bytes32)"], r"unsupported leaf type '\(uint256,bytes32\)'"),
        (["uint256", "string"], "unsupported leaf type 'string'"),
        # ...and things that are not types at all.
        (["uint7"], "unsupported leaf type"),
        (["nonsense"], "unsupported leaf type"),
        (["Bytes32"], "unsupported leaf type"),
        ([], "at least one type"),
        ("uint256", "list of types"),
        ([256], "leaf types are strings"),
        ([["uint256"]], "leaf types are strings"),
    ],
)
def test_unsupported_encodings_are_refused(encoding: Any, message: str) -> None:
    with pytest.raises(LeafEncodingError, match=message) as info:
        StandardMerkleTree.of([[1]], encoding)
    assert isinstance(info.value, MerkleError)
    assert isinstance(info.value, LedgerError)
    with pytest.raises(LeafEncodingError, match=message):
        leaf_hash(encoding, [1])


def test_values_must_be_a_list_of_leaves() -> None:
    with pytest.raises(LeafEncodingError, match="values must be a list of leaves"):
        StandardMerkleTree.of(b"\x00" * 32, UINT_BYTES)  # type: ignore[arg-type]
    with pytest.raises(LeafEncodingError, match="value 0 must be a list or tuple"):
        StandardMerkleTree.of([b"\x00" * 32], UINT_BYTES)


def test_empty_tree_is_rejected() -> None:
    with pytest.raises(InvalidTreeError, match="at least one leaf"):
        StandardMerkleTree.of([], UINT_BYTES)


@pytest.mark.parametrize("index", [-1, 2, True, "0"])
def test_proof_index_must_name_a_value(index: Any) -> None:
    tree = StandardMerkleTree.of([GOOD, GOOD], UINT_BYTES)
    with pytest.raises(LeafIndexError):
        tree.proof(index)
    with pytest.raises(IndexError):
        tree.leaf_hash_at(index)


@pytest.mark.parametrize(
    ("leaf", "proof", "message"),
    [
        (b"\x00" * 31, [], "the leaf hash must be 32 bytes"),
        (b"\x00" * 32, [b"\x00" * 33], r"proof\[0\] must be 32 bytes"),
        (b"\x00" * 32, ["0x1234"], r"proof\[0\] must be 32 bytes"),
        (b"\x00" * 32, ["zz"], r"proof\[0\] is not 0x-prefixed hex"),
        (b"\x00" * 32, [None], r"proof\[0\] must be bytes"),
        (b"\x00" * 32, b"\x00" * 32, "a proof is a list"),
    ],
)
def test_malformed_proofs_raise(leaf: Any, proof: Any, message: str) -> None:
    with pytest.raises(InvalidProofError, match=message):
        verify_proof(b"\x00" * 32, leaf, proof)


def test_a_malformed_root_raises() -> None:
    tree = StandardMerkleTree.of([GOOD], UINT_BYTES)
    with pytest.raises(InvalidProofError, match="the root must be 32 bytes"):
        verify_proof(tree.root[:31], tree.leaf_hash_at(0), [])
