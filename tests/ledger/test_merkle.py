"""ledger.merkle against its reference: the npm ``@openzeppelin/merkle-tree`` library (v1.0.8).

The node script ``js/merkle_tree.mjs`` runs the real library on the same leaves; roots, every
proof, leaf hashes and dumps must match byte for byte, in both directions of dump/load. Hypothesis
then checks the properties an auditor relies on: honest proofs verify, tampered ones do not.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger.merkle as merkle
from ledger.errors import LedgerError
from ledger.merkle import (
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

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "js" / "merkle_tree.mjs"
PACKAGE = ROOT / "contracts" / "node_modules" / "@openzeppelin" / "merkle-tree" / "package.json"

UINT_BYTES = ["uint256", "bytes32"]
RECEIPT = ["bytes32", "bytes32", "bytes32", "bytes32", "uint256", "address"]
STRING_UINT = ["string", "uint256"]
MIXED = ["bool", "int8", "bytes", "uint256[]", "(address,bytes4)[2]", "string[]", "int256"]
SIZES = [1, 2, 3, 7, 64, 1000]


# ---------------------------------------------------------------------------------------------
# The JS oracle
# ---------------------------------------------------------------------------------------------


def _js_json(value: Any) -> Any:
    """Leaf values as JSON the npm library reads exactly: big ints as strings, bytes as hex."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_js_json(v) for v in value]
    raise TypeError(value)


def _run_js(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed, so the npm reference library cannot run")
    if not PACKAGE.is_file():
        pytest.skip(f"{PACKAGE.parent} is missing (run npm ci in contracts/)")
    done = subprocess.run(
        ["node", str(SCRIPT)],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _rng_bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "big") if n else b""


def _address(rng: random.Random) -> str:
    return to_checksum_address(_rng_bytes(rng, 20))


def _leaves(encoding: list[str], n: int, seed: int) -> list[list[Any]]:
    rng = random.Random(f"{seed}-{n}-{encoding}")
    words = ["", "a", "café", "预测", "🦊 fox", "x" * 33, "label:\u0000nul", '"quoted"']
    out: list[list[Any]] = []
    for i in range(n):
        if encoding == UINT_BYTES:
            out.append([rng.getrandbits(256) if i % 5 else i, _rng_bytes(rng, 32)])
        elif encoding == RECEIPT:
            hashes = [_rng_bytes(rng, 32) for _ in range(4)]
            out.append([*hashes, 1_700_000_000 + rng.getrandbits(20), _address(rng)])
        elif encoding == STRING_UINT:
            word = rng.choice(words) + str(rng.getrandbits(rng.choice([0, 8, 200])))
            out.append([word, rng.getrandbits(rng.choice([1, 64, 256]))])
        else:
            out.append(
                [
                    bool(i % 2),
                    rng.randrange(-128, 128),
                    _rng_bytes(rng, rng.choice([0, 1, 32, 33, 70])),
                    [rng.getrandbits(256) for _ in range(rng.randrange(4))],
                    [(_address(rng), _rng_bytes(rng, 4)) for _ in range(2)],
                    [rng.choice(words) for _ in range(rng.randrange(3))],
                    rng.randrange(-(2**255), 2**255),
                ]
            )
    return out


CASES = [(enc, n) for enc in (UINT_BYTES, RECEIPT, STRING_UINT) for n in SIZES] + [
    (MIXED, n) for n in (1, 5, 40)
]


@cache
def _oracle() -> dict[tuple[str, int], dict[str, Any]]:
    """One node run for every case (node starts once, not per test)."""
    jobs = [
        {"op": "of", "values": _js_json(_leaves(enc, n, 1)), "leafEncoding": enc}
        for enc, n in CASES
    ]
    jobs.append(
        {
            "op": "of",
            "values": _js_json(_leaves(UINT_BYTES, 9, 2)),
            "leafEncoding": UINT_BYTES,
            "sortLeaves": False,
        }
    )
    results = _run_js(jobs)
    keyed = {(",".join(enc), n): r for (enc, n), r in zip(CASES, results, strict=False)}
    keyed[("unsorted", 9)] = results[-1]
    return keyed


def _hexes(nodes: list[bytes]) -> list[str]:
    return ["0x" + n.hex() for n in nodes]


@pytest.mark.parametrize(("encoding", "n"), CASES, ids=[f"{','.join(e)}-{n}" for e, n in CASES])
def test_same_root_proofs_and_dump_as_js(encoding: list[str], n: int) -> None:
    js = _oracle()[(",".join(encoding), n)]
    assert "error" not in js, js
    values = _leaves(encoding, n, 1)
    tree = StandardMerkleTree.of(values, encoding)

    assert len(tree) == n
    assert "0x" + tree.root.hex() == js["root"]
    assert [_hexes(tree.proof(i)) for i in range(n)] == js["proofs"]
    assert _hexes([tree.leaf_hash_at(i) for i in range(n)]) == js["leafHashes"]
    assert _hexes([tree.leaf_hash(v) for v in values]) == js["leafHashes"]
    assert tree.dump() == js["dump"]


def test_unsorted_leaves_match_js() -> None:
    js = _oracle()[("unsorted", 9)]
    tree = StandardMerkleTree.of(_leaves(UINT_BYTES, 9, 2), UINT_BYTES, sort_leaves=False)
    assert "0x" + tree.root.hex() == js["root"]
    assert [_hexes(tree.proof(i)) for i in range(9)] == js["proofs"]
    assert tree.dump() == js["dump"]


def test_js_loads_our_dump_and_we_load_its() -> None:
    ours = [StandardMerkleTree.of(_leaves(enc, n, 3), enc) for enc, n in CASES if n <= 64]
    results = _run_js([{"op": "load", "dump": t.dump()} for t in ours])
    for tree, js in zip(ours, results, strict=True):
        assert "error" not in js, js
        assert js["root"] == "0x" + tree.root.hex()
        assert js["proofs"] == [_hexes(tree.proof(i)) for i in range(len(tree))]
        # ...and the JS dump (the same JSON the library writes) loads back here.
        back = StandardMerkleTree.load(json.dumps(js["dump"]))
        assert back.root == tree.root
        assert [back.proof(i) for i in range(len(back))] == [
            tree.proof(i) for i in range(len(tree))
        ]


def test_js_rejects_a_dump_we_tampered_with() -> None:
    dump = StandardMerkleTree.of(_leaves(UINT_BYTES, 4, 4), UINT_BYTES).dump()
    dump["values"][0]["value"][0] = str(int(dump["values"][0]["value"][0]) + 1)
    [result] = _run_js([{"op": "load", "dump": dump}])
    assert "error" in result
    with pytest.raises(InvalidTreeError, match="does not hash to tree node"):
        StandardMerkleTree.load(dump)


# ---------------------------------------------------------------------------------------------
# The hand-written ABI encoder against eth_abi
# ---------------------------------------------------------------------------------------------

_addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
_STRATEGIES = {
    "uint256": st.integers(0, 2**256 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "int8": st.integers(-128, 127),
    "int256": st.integers(-(2**255), 2**255 - 1),
    "bytes32": st.binary(min_size=32, max_size=32),
    "bytes4": st.binary(min_size=4, max_size=4),
    "bytes": st.binary(max_size=80),
    "string": st.text(max_size=40),
    "bool": st.booleans(),
    "address": _addresses,
    "uint256[]": st.lists(st.integers(0, 2**256 - 1), max_size=4),
    "string[2]": st.lists(st.text(max_size=10), min_size=2, max_size=2),
    "(address,bytes4)[2]": st.lists(
        st.tuples(_addresses, st.binary(min_size=4, max_size=4)), min_size=2, max_size=2
    ),
    "(string,uint8)": st.tuples(st.text(max_size=10), st.integers(0, 255)),
}


@st.composite
def _encoding_and_value(draw: st.DrawFn) -> tuple[list[str], list[Any]]:
    types = draw(st.lists(st.sampled_from(sorted(_STRATEGIES)), min_size=1, max_size=6))
    return types, [draw(_STRATEGIES[t]) for t in types]


@settings(max_examples=300, deadline=None)
@given(_encoding_and_value())
def test_leaf_hash_is_double_keccak_of_eth_abi_encode(case: tuple[list[str], list[Any]]) -> None:
    types, value = case
    expected = keccak(keccak(abi_encode(types, value)))
    assert leaf_hash(types, value) == expected
    assert StandardMerkleTree.of([value], types).root == expected
    # A value survives the JSON dump as the same leaf.
    assert StandardMerkleTree.load(StandardMerkleTree.of([value], types).dump()).root == expected


def test_hex_and_string_inputs_hash_like_native_ones() -> None:
    encoding = ["uint256", "bytes32", "address", "bytes", "uint8"]
    native = [2**200, b"\x01" * 32, b"\xaa" * 20, b"\x02\x03", 7]
    as_text = [str(2**200), "0x" + "01" * 32, "0x" + "aa" * 20, "0x0203", "0x07"]
    assert leaf_hash(encoding, native) == leaf_hash(encoding, as_text)
    assert leaf_hash(["int8"], [-5]) == leaf_hash(["int8"], ["-5"]) == leaf_hash(["int8"], ["-0x5"])


def test_native_and_fallback_hashing_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    values = _leaves(RECEIPT, 33, 5)
    fast = StandardMerkleTree.of(values, RECEIPT)
    monkeypatch.setattr(merkle, "_CORE", None)
    assert merkle._bulk_hashers() == (merkle._fallback_leaf, merkle._fallback_node)
    slow = StandardMerkleTree.of(values, RECEIPT)
    assert fast.root == slow.root
    assert fast.dump() == slow.dump()


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
        assert verify_proof("0x" + tree.root.hex(), "0x" + leaf.hex(), _hexes(proof))

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
    back = StandardMerkleTree.load(json.loads(json.dumps(tree.dump())))
    assert back.root == tree.root
    assert back.dump() == tree.dump()
    assert [back.proof(i) for i in range(len(back))] == [tree.proof(i) for i in range(len(tree))]


def test_proof_index_is_the_position_in_the_original_values() -> None:
    values = [[n, bytes([n]) * 32] for n in range(10)]
    tree = StandardMerkleTree.of(values, UINT_BYTES)
    for i, value in enumerate(values):
        assert tree.values[i] == tuple(value)
        assert verify_proof(tree.root, leaf_hash(UINT_BYTES, value), tree.proof(i))


def test_duplicate_leaves_each_get_a_proof() -> None:
    values = [[1, b"\x00" * 32]] * 3
    tree = StandardMerkleTree.of(values, UINT_BYTES)
    assert sorted(tree.dump()["values"][i]["treeIndex"] for i in range(3)) == [2, 3, 4]
    assert all(verify_proof(tree.root, tree.leaf_hash_at(i), tree.proof(i)) for i in range(3))


def test_single_leaf_tree_root_is_the_leaf() -> None:
    tree = StandardMerkleTree.of([[1, b"\x00" * 32]], UINT_BYTES)
    assert tree.root == tree.leaf_hash_at(0)
    assert tree.proof(0) == []


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
    ("encoding", "value", "message"),
    [
        (["address"], ["0x" + "ab" * 19], "20-byte hex address"),
        (["address"], ["0x52908400098527886e0F7030069857D2E4169EE7"], "valid checksum"),
        (["address"], [b"\x01" * 19], "an address is 20 bytes"),
        (["bool"], [1], "expected a bool"),
        (["string"], [b"abc"], "expected a str"),
        (["string"], ["\ud800"], "UTF-8"),
        (["int8"], [128], "out of range for int8"),
        (["uint8[2]"], [[1]], "needs 2 items, got 1"),
        (["(uint8,bool)"], [[1]], "needs 2 items, got 1"),
    ],
)
def test_other_types_reject_bad_values(encoding: list[str], value: Any, message: str) -> None:
    with pytest.raises(LeafEncodingError, match=message):
        leaf_hash(encoding, value)


def test_checksummed_and_lowercase_addresses_are_accepted() -> None:
    address = "0x52908400098527886E0F7030069857D2E4169EE7"
    assert leaf_hash(["address"], [address]) == leaf_hash(["address"], [address.lower()])


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        (["uint7"], "not a valid ABI type"),
        (["bytes33"], "not a valid ABI type"),
        (["nonsense"], "unsupported leaf type"),
        (["function"], "unsupported leaf type"),
        (["fixed128x18"], "unsupported leaf type"),
        ([], "at least one type"),
        ("uint256", "list of types"),
        ([256], "leaf types are strings"),
    ],
)
def test_bad_encodings_are_rejected(encoding: Any, message: str) -> None:
    with pytest.raises(LeafEncodingError, match=message):
        StandardMerkleTree.of([[1]], encoding)


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


def _dump() -> dict[str, Any]:
    return StandardMerkleTree.of([[n, bytes([n]) * 32] for n in range(5)], UINT_BYTES).dump()


def _set(path: list[Any], new: Any) -> dict[str, Any]:
    dump = _dump()
    target: Any = dump
    for key in path[:-1]:
        target = target[key]
    if new is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = new
    return dump


_DELETE = object()


@pytest.mark.parametrize(
    ("dump", "message"),
    [
        (_set(["format"], "standard-v2"), "unknown format 'standard-v2'"),
        (_set(["leafEncoding"], _DELETE), "needs a 'leafEncoding' list"),
        (_set(["tree"], _DELETE), "needs 'tree' and 'values' lists"),
        (_set(["values"], []), "at least one leaf"),
        (_set(["tree", 0], "0x" + "00" * 32), "tree node 0 is not the hash of its children"),
        (_set(["tree", 8], "0x" + "00" * 32), "tree node 3 is not the hash of its children"),
        (_set(["tree", 2], "0x00"), "tree node 2 must be 32 bytes"),
        (_set(["values", 1, "treeIndex"], 0), "is not a leaf position"),
        (_set(["values", 1, "treeIndex"], 9), "is not a leaf position"),
        (_set(["values", 1, "value", 1], "0x" + "ff" * 32), "does not hash to tree node"),
        (_set(["values", 1, "value"], ["1"]), "expected 2 fields"),
        (_set(["values", 1], {"value": ["1", "0x" + "01" * 32]}), "needs 'value' and 'treeIndex'"),
    ],
)
def test_load_rejects_malformed_or_tampered_dumps(dump: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTreeError, match=message) as info:
        StandardMerkleTree.load(dump)
    assert isinstance(info.value, MerkleError)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, LedgerError)


def test_load_rejects_swapped_leaves() -> None:
    dump = _dump()
    first, second = dump["values"][0], dump["values"][1]
    first["treeIndex"], second["treeIndex"] = second["treeIndex"], first["treeIndex"]
    with pytest.raises(InvalidTreeError, match="does not hash to tree node"):
        StandardMerkleTree.load(dump)


def test_load_rejects_non_json() -> None:
    with pytest.raises(InvalidTreeError, match="must be JSON"):
        StandardMerkleTree.load("{not json")
    with pytest.raises(InvalidTreeError, match="JSON object"):
        StandardMerkleTree.load("[]")
