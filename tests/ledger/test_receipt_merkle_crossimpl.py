"""Receipt batches agree across implementations: ours, the npm library and the contract.

The npm ``@openzeppelin/merkle-tree`` library (run with node by ``js/receipt_tree.mjs``) builds
trees over the same signed receipts' leaves (:data:`RECEIPT_LEAF_ENCODING`): roots, leaf hashes
and every proof must be identical to ours, and so must the batches the receipt book plans. The
deployed contract's ``verifyPrediction`` (on the embedded chain and on anvil) must accept our
proofs and refuse forged ones.
"""

from __future__ import annotations

import hashlib
import random
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from ledger.errors import UnknownBatch
from ledger.formats.merkle import StandardMerkleTree, leaf_hash, verify_proof
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import (
    RECEIPT_LEAF_ENCODING,
    Receipt,
    ReceiptDomain,
    input_hash,
    receipt_leaf,
)
from ledger.writes.anchoring import ReceiptBook
from ml.hashing import to_hex
from tests.conftest import Deployed
from tests.ledger import _standard_v1 as standard_v1
from tests.ledger._merkle_js import RECEIPT_TREE_JS, run_js

ENCODING = list(RECEIPT_LEAF_ENCODING)
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 16, 33, 100]
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
DOMAIN = ReceiptDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


def _run_js(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = run_js(RECEIPT_TREE_JS, jobs, timeout=120)
    for result in results:
        assert "error" not in result, result
    return results


def _js_leaf(receipt: Receipt) -> list[Any]:
    """The leaf as the npm library reads it (uint256 as a decimal string, like its own dumps)."""
    leaf = receipt_leaf(receipt)
    leaf[4] = str(leaf[4])
    return leaf


def _receipts(
    n: int,
    seed: int,
    *,
    signer: ReceiptSigner | None = None,
    model_hash: bytes | None = None,
) -> list[Receipt]:
    """``n`` genuinely signed receipts, reproducible from ``seed`` (ids, inputs, outputs, times)."""
    rng = random.Random(seed)
    signer = signer or ReceiptSigner(KEY, DOMAIN)
    model = model_hash or rng.randbytes(32)
    receipts = []
    for i in range(n):
        row = {"x1": rng.randint(0, 10**6), "x2": rng.random(), "i": i}
        output = rng.choice([rng.random() * 1e4, {"label": "a", "probabilities": {"a": 0.5}}])
        receipts.append(
            signer.sign(
                model_hash=model,
                input_hash=input_hash(row),
                output=output,
                receipt_id=rng.randbytes(32),
                # 0, 2**32 and 2**64 - 1 cover the uint64 -> uint256 widening at both ends
                issued_at=rng.choice([0, 2**32, 2**64 - 1, 1_700_000_000 + i]),
            )
        )
    return receipts


@cache
def _oracle() -> tuple[dict[int, list[Receipt]], dict[int, dict[str, Any]]]:
    """One node run for every size (node starts once, not per test)."""
    batches = {n: _receipts(n, seed=n) for n in SIZES}
    jobs = [{"values": [_js_leaf(r) for r in batches[n]], "leafEncoding": ENCODING} for n in SIZES]
    return batches, dict(zip(SIZES, _run_js(jobs), strict=True))


def _hexes(nodes: list[bytes]) -> list[str]:
    return [to_hex(node) for node in nodes]


@pytest.mark.parametrize("n", SIZES)
def test_roots_leaf_hashes_and_proofs_match_the_npm_library(n: int) -> None:
    batches, oracle = _oracle()
    receipts, js = batches[n], oracle[n]
    tree = StandardMerkleTree.of([receipt_leaf(r) for r in receipts], ENCODING)

    assert to_hex(tree.root) == js["root"]
    assert [to_hex(tree.leaf_hash_at(i)) for i in range(n)] == js["leafHashes"]
    assert [_hexes(tree.proof(i)) for i in range(n)] == js["proofs"]
    assert all(js["verified"])
    # The leaf hash verify.py recomputes from a receipt alone is the tree's leaf.
    assert [leaf_hash(RECEIPT_LEAF_ENCODING, receipt_leaf(r)) for r in receipts] == [
        tree.leaf_hash_at(i) for i in range(n)
    ]
    # Our dump is the library's dump, value for value.
    assert standard_v1.dump(tree) == js["dump"]


def test_each_side_loads_the_others_dump_and_gets_the_same_tree() -> None:
    batches, oracle = _oracle()
    ours = {n: StandardMerkleTree.of(list(map(receipt_leaf, batches[n])), ENCODING) for n in SIZES}
    back = _run_js([{"dump": standard_v1.dump(ours[n])} for n in SIZES])
    for n, js in zip(SIZES, back, strict=True):
        assert js["root"] == oracle[n]["root"]
        assert js["proofs"] == oracle[n]["proofs"]
        loaded = standard_v1.load(oracle[n]["dump"])
        assert loaded.root == ours[n].root
        assert [loaded.proof(i) for i in range(n)] == [ours[n].proof(i) for i in range(n)]


def test_the_npm_library_rejects_the_forged_proofs_we_reject() -> None:
    receipts = _receipts(9, seed=99)
    other = _receipts(9, seed=100)
    tree = StandardMerkleTree.of([receipt_leaf(r) for r in receipts], ENCODING)
    other_tree = StandardMerkleTree.of([receipt_leaf(r) for r in other], ENCODING)
    altered = receipts[3].model_copy(update={"output_hash": hashlib.sha256(b"42").digest()})
    flipped = tree.proof(3)
    flipped[0] = bytes([flipped[0][0] ^ 1]) + flipped[0][1:]
    forged = [
        (receipts[3], _hexes(tree.proof(4))),  # another leaf's proof
        (receipts[3], _hexes(tree.proof(3)[:-1])),  # a proof cut short
        (receipts[3], _hexes(flipped)),  # one bit of a sibling flipped
        (other[3], _hexes(other_tree.proof(3))),  # a receipt of another batch
        (altered, _hexes(tree.proof(3))),  # a field changed after batching
    ]
    for receipt, proof in forged:
        leaf = leaf_hash(RECEIPT_LEAF_ENCODING, receipt_leaf(receipt))
        assert not verify_proof(tree.root, leaf, proof)
    honest = (receipts[3], _hexes(tree.proof(3)))
    [js] = _run_js(
        [
            {
                "values": [_js_leaf(r) for r in receipts],
                "leafEncoding": ENCODING,
                "checks": [{"value": _js_leaf(r), "proof": p} for r, p in [honest, *forged]],
            }
        ]
    )
    assert js["checks"] == [True] + [False] * len(forged)


def test_the_receipt_books_batches_are_the_npm_librarys_trees(tmp_path: Path) -> None:
    """What the anchorer plans (root, leaf and proof per receipt) is what npm computes."""
    model = bytes.fromhex("ab" * 32)
    receipts = _receipts(23, seed=7, model_hash=model)
    book = ReceiptBook(tmp_path / "receipts.sqlite3")
    try:
        book.add(receipts, [{"i": i} for i in range(len(receipts))])
        roots = book.plan(batch_size=10)  # 10 + 10 + 3, in issue order
        assert len(roots) == 3
        chunks = [receipts[0:10], receipts[10:20], receipts[20:23]]
        js = _run_js(
            [{"values": [_js_leaf(r) for r in chunk], "leafEncoding": ENCODING} for chunk in chunks]
        )
        for root, chunk, tree in zip(roots, chunks, js, strict=True):
            assert root == tree["root"]
            for i, receipt in enumerate(chunk):
                stored = book.get(to_hex(receipt.receipt_id))
                assert stored is not None
                assert stored.batch_id == tree["root"]
                assert stored.leaf == tree["leafHashes"][i]
                assert list(stored.proof) == tree["proofs"][i]
    finally:
        book.close()


# ---------------------------------------------------------------------------------------------
# The contract (embedded chain and anvil)
# ---------------------------------------------------------------------------------------------


def _model_on_chain(deployed: Deployed, seed: int) -> str:
    """Register a dataset and a model trained on it; returns the model hash."""
    rng = random.Random(seed)
    dataset, model = rng.randbytes(32), rng.randbytes(32)
    client = deployed.registrar
    client.register_dataset(
        dataset, rows_root=rng.randbytes(32), row_count=3, schema_hash=rng.randbytes(32)
    )
    client.register_model(model, datasets=[dataset], metadata_hash=rng.randbytes(32))
    return to_hex(model)


def test_the_contract_accepts_our_proofs_and_refuses_forged_ones(deployed: Deployed) -> None:
    client = deployed.registrar
    domain = ReceiptDomain(client.chain_id(), client.address)
    signer = ReceiptSigner(deployed.chain.account().key, domain)
    model = _model_on_chain(deployed, seed=1)
    receipts = _receipts(13, seed=13, signer=signer, model_hash=bytes.fromhex(model[2:]))
    tree = StandardMerkleTree.of([receipt_leaf(r) for r in receipts], ENCODING)
    other = _receipts(5, seed=5, signer=signer, model_hash=bytes.fromhex(model[2:]))
    other_tree = StandardMerkleTree.of([receipt_leaf(r) for r in other], ENCODING)
    for batch in (tree, other_tree):
        client.anchor_predictions(model, batch.root, len(batch))
    [js] = _run_js([{"values": [_js_leaf(r) for r in receipts], "leafEncoding": ENCODING}])
    assert js["root"] == to_hex(tree.root)

    # 1. Every honest proof, ours and the npm library's, is accepted.
    for i in range(len(receipts)):
        assert client.verify_prediction(tree.root, tree.leaf_hash_at(i), tree.proof(i))
        assert client.verify_prediction(js["root"], js["leafHashes"][i], js["proofs"][i])
        assert deployed.outsider.verify_prediction(tree.root, tree.leaf_hash_at(i), tree.proof(i))

    # 2. Forged ones are refused.
    leaf = tree.leaf_hash_at(6)
    flipped = tree.proof(6)
    flipped[-1] = flipped[-1][:-1] + bytes([flipped[-1][-1] ^ 0x80])
    altered = receipts[6].model_copy(update={"input_hash": hashlib.sha256(b"{}").digest()})
    altered_leaf = leaf_hash(RECEIPT_LEAF_ENCODING, receipt_leaf(altered))
    forged = {
        "another leaf's proof": (tree.root, leaf, tree.proof(7)),
        "a sibling flipped": (tree.root, leaf, flipped),
        "a proof cut short": (tree.root, leaf, tree.proof(6)[:-1]),
        "no proof": (tree.root, leaf, []),
        "an altered receipt": (tree.root, altered_leaf, tree.proof(6)),
        "a proof from another batch": (tree.root, leaf, other_tree.proof(2)),
        "a leaf of another batch": (tree.root, other_tree.leaf_hash_at(2), other_tree.proof(2)),
        "the right proof, another anchored root": (other_tree.root, leaf, tree.proof(6)),
    }
    for what, (root, forged_leaf, proof) in forged.items():
        assert not client.verify_prediction(root, forged_leaf, proof), what

    # 3. A root that was never anchored is not a batch, however sound its proof.
    unanchored = StandardMerkleTree.of(
        [receipt_leaf(r) for r in _receipts(3, seed=3, signer=signer)], ENCODING
    )
    with pytest.raises(UnknownBatch):
        client.verify_prediction(unanchored.root, unanchored.leaf_hash_at(0), unanchored.proof(0))


def test_a_single_receipt_batch_has_an_empty_proof_the_contract_accepts(
    deployed: Deployed,
) -> None:
    client = deployed.registrar
    model = _model_on_chain(deployed, seed=2)
    signer = ReceiptSigner(Account.create().key, ReceiptDomain(client.chain_id(), client.address))
    [receipt] = _receipts(1, seed=1, signer=signer, model_hash=bytes.fromhex(model[2:]))
    tree = StandardMerkleTree.of([receipt_leaf(receipt)], ENCODING)
    assert tree.proof(0) == [] and tree.root == tree.leaf_hash_at(0)
    client.anchor_predictions(model, tree.root, 1)
    assert client.verify_prediction(tree.root, tree.leaf_hash_at(0), [])
