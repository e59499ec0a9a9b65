"""Registration at real size, below the service: stage → scan → row index → commit → row proof.

``register`` and ``row_proof`` below run the service's own steps (``index_file``,
``open_row_index``, ``prove_row`` in api/service/datasets.py, which joins ml and ledger since
they may not import each other), without a chain. The old path is the one
the service had: parse the whole file in memory (tests/ml/_datasets_v1.py), then build the
StandardMerkleTree in memory (ledger.formats.rows). For every kind of file both paths must give the
same content hash, schema hash and rows root, and proofs from the on-disk index must verify, in
Python and with @openzeppelin/merkle-tree.
"""

from __future__ import annotations

import hashlib
import io
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest

from api.service.dataset_rows import index_file, open_row_index, prove_row
from ledger.formats.merkle import verify_proof
from ledger.formats.rows import ROW_LEAF_ENCODING, rows_root
from ledger.storage.artifacts import ArtifactStore
from ml.datasets import Limits, parse_dataset
from ml.hashing import to_hex
from ml.scanning import Scan
from ml.transforms import TransformSpec, derive_file
from tests.ledger._merkle_js import js_json, run_js
from tests.ml._datasets_v1 import parse_dataset_v1
from tests.ml._transforms_v1 import apply_transform_v1

VERIFY_JS = Path(__file__).resolve().parent / "ledger" / "js" / "verify_proofs.mjs"
PINNED_CSV = (
    b'x1,x2,label,note\n1,2.5,a,"hello, world"\n2,3.5,b,\n3,-1e3,a,"multi\nline"\n'
    b"4,0.1,b,plain\n5,7,a,x\n6,8,b,y\n"
)


def register(store: ArtifactStore, stream: Any, limits: Limits = Limits()) -> tuple[Scan, str]:
    """What Datasets.register does before its transaction (the service's own index_file; the
    check for bytes registered already needs the chain): returns the scan and rows root."""
    staged = store.stage(stream, max_bytes=limits.max_bytes)
    try:
        scan, info = index_file(store, staged.path, limits)
    except BaseException:
        store.discard(staged)
        raise
    store.commit(staged)
    store.commit_rows(staged.digest, info.path)
    return scan, to_hex(info.root)


def row_proof(store: ArtifactStore, content_hash: str, index: int) -> dict[str, Any]:
    """What Datasets.row_proof does, through the service's own functions: the row index
    (rebuilt when missing or damaged), then a few reads of it and of the file."""
    with open_row_index(store, content_hash, Limits(), nullcontext) as rows:
        return prove_row(store, rows, content_hash, index).model_dump()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


FILES = {
    "numeric": b"id,a,b,c,d\n"
    + b"".join(b"%d,%d,%d,%r,%d\n" % (i, i % 97, i * 7, i * 0.5, i % 2) for i in range(300)),
    "text": b"name,city\n"
    + b"".join(b'"person %d","city, %d"\n' % (i, i % 13) for i in range(200)),
    "quoted commas and newlines": b'a,b\n"x,y","line 1\nline 2"\n"z","\r\nstill z"\n',
    "utf-8 bom": b"\xef\xbb\xbfa,b\n1,2\n3,4\n",
    "crlf": b"a,b\r\n1,x\r\n2,y\r\n",
    "missing values": b"i,f,b,s\n1,,true,\n,2.5,,x\n,,,\n",
    "single column": b"only\n1\n2\n3\n",
    "single row": b"a,b,c\n1,2.5,z\n",
    "pinned": PINNED_CSV,
}


@pytest.mark.parametrize("name", list(FILES))
def test_the_old_and_the_new_path_give_the_same_hashes_and_root(
    store: ArtifactStore, name: str
) -> None:
    data = FILES[name]
    before = parse_dataset_v1(data)
    scan, root = register(store, io.BytesIO(data))
    assert scan.content_hash == before.content_hash == hashlib.sha256(data).digest()
    assert scan.schema_hash == before.schema_hash
    assert scan.row_count == before.row_count
    assert root == to_hex(rows_root(before.row_digests()))
    content = to_hex(scan.content_hash)
    for index in {0, before.row_count // 2, before.row_count - 1}:
        answer = row_proof(store, content, index)
        assert answer["row"] == list(before.rows[index])
        assert answer["row_digest"] == to_hex(before.row_digests()[index])
        assert verify_proof(root, answer["leaf"], answer["proof"])


def test_the_pinned_root_through_the_streaming_path(store: ArtifactStore) -> None:
    _, root = register(store, io.BytesIO(PINNED_CSV))
    assert root == "0xdb1211b2ad44fa589d5277c3c19e5a0c9fd3ce0aa551d81827ab199ad2e74f96"


def test_proofs_of_a_large_file_verify_with_the_npm_library(
    store: ArtifactStore, tmp_path: Path
) -> None:
    """First, a middle and the last row of a 150,000-row file, from the on-disk index."""
    path = tmp_path / "large.csv"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("id,x,label,note\n")
        for i in range(150_000):
            handle.write(f'{i},{i * 0.125},{"abc"[i % 3]},"row {i}, ok"\n')
    with open(path, "rb") as handle:
        scan, root = register(store, handle)
    content = to_hex(scan.content_hash)
    answers = [row_proof(store, content, i) for i in (0, 75_000, 149_999)]
    assert [a["row"][0] for a in answers] == [0, 75_000, 149_999]
    jobs = [
        {
            "root": root,
            "leafEncoding": list(ROW_LEAF_ENCODING),
            "value": js_json([a["index"], bytes.fromhex(a["row_digest"][2:])]),
            "proof": a["proof"],
        }
        for a in answers
    ]
    results = run_js(VERIFY_JS, jobs)
    assert [r.get("ok") for r in results] == [True, True, True]
    assert [r["leafHash"] for r in results] == [a["leaf"] for a in answers]
    assert answers[1]["row"] == [75_000, 9375.0, "a", "row 75000, ok"]


def test_a_dataset_registered_before_row_indexes_gets_one_on_its_first_proof(
    store: ArtifactStore,
) -> None:
    data = FILES["numeric"]
    digest = store.put_bytes(data)  # as the old service stored it: the file only
    assert not store.has_rows(digest)
    answer = row_proof(store, digest, 123)
    assert answer["root"] == to_hex(rows_root(parse_dataset(data).row_digests()))
    assert store.has_rows(digest)
    store.rows_path(digest).write_bytes(b"garbage")  # a damaged index is rebuilt too
    assert row_proof(store, digest, 7)["root"] == answer["root"]


def test_a_derived_dataset_streams_to_the_old_bytes_and_root(store: ArtifactStore) -> None:
    data = FILES["numeric"]
    scan, _ = register(store, io.BytesIO(data))
    spec = TransformSpec.from_json(
        {"steps": [{"step": "filter_rows", "column": "b", "op": ">=", "value": 300},
                   {"step": "clip_outliers", "method": "zscore", "factor": 1.0},
                   {"step": "drop_duplicates", "columns": ["d"]}]}
    )  # fmt: skip
    parent = store.verified_path(to_hex(scan.content_hash))
    with store.stage_output() as out:
        derive_file(parent, spec, out, max_memory_bytes=1 << 20)
        staged = out.finish()
    expected = apply_transform_v1(parse_dataset(data), spec)
    assert staged.path.read_bytes() == expected
    with open(staged.path, "rb") as handle:
        child, root = register(store, handle)
    store.discard(staged)
    assert root == to_hex(rows_root(parse_dataset(expected).row_digests()))
    assert child.content_hash == hashlib.sha256(expected).digest()


def test_a_bad_upload_leaves_nothing_in_the_store(store: ArtifactStore) -> None:
    with pytest.raises(Exception, match=r"ragged|line 3"):
        register(store, io.BytesIO(b"a,b\n1,2\n3\n"))
    assert list(store.digests()) == []
    assert list((store.root / "tmp").iterdir()) == []
    assert not (store.root / "rows").exists()
