"""Hashes that must never change silently: each value was computed with the code of 2026-12-01
(before the service layer was split) and is pinned here, so a refactor that changes a content
hash, a row root, a schema hash, a model hash, a metadata document or a receipt signature fails.

If a format must change on purpose, it is versioned, old records still verify, and this file
gains the new values beside the old ones — never a silent edit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import ReceiptDomain, input_hash
from ledger.formats.rows import rows_root
from ml.datasets import parse_dataset
from ml.hashing import canonical_json, to_hex
from ml.training import train
from tests._kernels import kernel_params

CSV = (
    b'x1,x2,label,note\n1,2.5,a,"hello, world"\n2,3.5,b,\n3,-1e3,a,"multi\nline"\n'
    b"4,0.1,b,plain\n5,7,a,x\n6,8,b,y\n"
)
DOMAIN = ReceiptDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcb78c5fdb7e0f9a8f")


def test_dataset_hashes_are_pinned() -> None:
    dataset = parse_dataset(CSV)
    assert to_hex(dataset.content_hash) == (
        "0xce6df582582279254f4c46793356fda2038fdc350ddf48af7e3321c25252f982"
    )
    assert dataset.content_hash == hashlib.sha256(CSV).digest()
    assert to_hex(dataset.schema_hash) == (
        "0x8d51e1df1116c28a56e6f7b14f04fdcb3c748dbbf0025a271190c9bfa8d02e3c"
    )
    assert dataset.row_count == 6
    assert to_hex(rows_root(dataset.row_digests())) == (
        "0xdb1211b2ad44fa589d5277c3c19e5a0c9fd3ce0aa551d81827ab199ad2e74f96"
    )


# The model file's last bits depend on the OpenBLAS kernels that trained it (issue 19), so its
# hash is pinned per kernel set; the metadata of format 1 does not (it records no environment),
# and format 2 is format 1 plus the "environment" that says which kernels trained it.
MODEL_HASH_BY_KERNEL = {
    "SkylakeX": "0x3818eeb9509cccd2ad90079a2eb56a23bc1e234ec6b45bb816973379d8de0b9f",
    "Haswell": "0xa1bfa240ff3bedc13b6f46e574dfad91d37fa78e8ad42bc0ed2eca3c9b693686",
    "Zen": "0xa1bfa240ff3bedc13b6f46e574dfad91d37fa78e8ad42bc0ed2eca3c9b693686",
    "Prescott": "0xb98662dacccbedc3f28626406a2ce99fee14f1e4000d278a3e6f3727c3c6dc39",
}
METADATA_V1_HASH = "d6cc3c866e613be666128aee6d2c48ba3d1c53b6a9a24e0e5293cbae484aa43a"
_TRAIN_PINNED = """
import hashlib, json, sys
from ml.datasets import parse_dataset
from ml.hashing import canonical_json, to_hex
from ml.training import train
dataset = parse_dataset(sys.stdin.buffer.read())
answer = {}
for version in (1, 2):
    trained = train(dataset, algorithm="logistic_regression", target="label",
                    features=["x1", "x2"], params={}, test_size=0.0, seed=0,
                    metadata_version=version)
    metadata = json.loads(trained.metadata_bytes)
    answer[version] = {"model": to_hex(trained.model_hash),
                       "metadata": hashlib.sha256(trained.metadata_bytes).hexdigest(),
                       "environment": metadata.pop("environment", None),
                       "without_environment": hashlib.sha256(canonical_json(metadata)).hexdigest()}
print(json.dumps(answer))
"""


@pytest.mark.parametrize("kernel", kernel_params())
def test_model_hash_and_metadata_are_pinned(kernel: str) -> None:
    """Trained in a new process under each OpenBLAS kernel set (OPENBLAS_CORETYPE is read when
    the library loads): the model hash is that kernel's pin, the format-1 metadata hash is the
    same everywhere, and format 2 differs from it only by the environment it records."""
    done = subprocess.run(
        [sys.executable, "-c", _TRAIN_PINNED],
        input=CSV,
        capture_output=True,
        env={**os.environ, "OPENBLAS_CORETYPE": kernel},
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
    )
    answer = json.loads(done.stdout)
    v1, v2 = answer["1"], answer["2"]
    assert v1["model"] == v2["model"] == MODEL_HASH_BY_KERNEL[kernel]
    assert v1["metadata"] == METADATA_V1_HASH
    assert v1["environment"] is None
    assert (
        v2["without_environment"]
        == hashlib.sha256(
            canonical_json({**json.loads(_pinned_v1_document()), "format_version": 2})
        ).hexdigest()
    )
    architectures = {item["architecture"] for item in v2["environment"]["blas"]}
    assert architectures <= {kernel, "Haswell", "Katmai"}, architectures  # Zen reports Haswell


def _pinned_v1_document() -> bytes:
    trained = train(
        parse_dataset(CSV),
        algorithm="logistic_regression",
        target="label",
        features=["x1", "x2"],
        params={},
        test_size=0.0,
        seed=0,
        metadata_version=1,
    )
    assert hashlib.sha256(trained.metadata_bytes).hexdigest() == METADATA_V1_HASH
    return trained.metadata_bytes


def test_receipt_hashes_and_signature_are_pinned() -> None:
    receipt = ReceiptSigner(KEY, DOMAIN).sign(
        model_hash="0xa1bfa240ff3bedc13b6f46e574dfad91d37fa78e8ad42bc0ed2eca3c9b693686",
        input_hash=input_hash({"x1": 1, "x2": 2.5}),
        output={"label": "a", "probabilities": {"a": 0.75, "b": 0.25}},
        receipt_id=b"\x11" * 32,
        issued_at=1_700_000_000,
    )
    assert to_hex(receipt.input_hash) == (
        "0xa57478bfe883cfbdf931880e5915e5b9dd58c65633d7f594edd5d2128dabaaee"
    )
    assert to_hex(receipt.output_hash) == (
        "0xcfa63a15b1071af0c10d4930776a0c8a8b3a7a5e296a542c0a0055f70444e2db"
    )
    assert "0x" + bytes(receipt.signature).hex() == (
        "0x542dd64a1d4c1a55929575f77868f0374ecbbb20854b06b13d5437d0d04f287e"
        "45d3bfac91edf8da7a537cd06f8c5320a71ee4b59368ce7686e3b13b4f38062a1b"
    )
