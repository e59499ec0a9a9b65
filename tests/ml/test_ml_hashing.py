"""Content hashes match sha256sum; canonical JSON has exactly one encoding per value."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ml.errors import CanonicalJsonError, MlError
from ml.hashing import canonical_json, from_hex, sha256_bytes, sha256_file, to_hex

SHA256SUM = shutil.which("sha256sum")


def _sha256sum(path: Path) -> bytes:
    out = subprocess.run([SHA256SUM, str(path)], check=True, capture_output=True, text=True)
    return bytes.fromhex(out.stdout.split()[0])


@pytest.mark.skipif(SHA256SUM is None, reason="sha256sum not installed")
@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024 + 17])
def test_sha256_file_equals_sha256sum(tmp_path: Path, size: int) -> None:
    path = tmp_path / "blob"
    path.write_bytes(np.random.default_rng(size).bytes(size))
    digest = sha256_file(path)
    assert len(digest) == 32
    assert digest == _sha256sum(path)
    assert digest == hashlib.sha256(path.read_bytes()).digest()


def test_known_vectors() -> None:
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_bytes(b"").hex() == empty
    assert sha256_bytes(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_sha256_file_accepts_str_paths(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"x")
    assert sha256_file(os.fspath(path)) == sha256_bytes(b"x")


def test_hex_round_trip() -> None:
    digest = sha256_bytes(b"abc")
    assert to_hex(digest) == "0x" + digest.hex()
    assert from_hex(to_hex(digest)) == digest
    assert from_hex(digest.hex()) == digest
    with pytest.raises(CanonicalJsonError):
        from_hex("0x1234")
    with pytest.raises(CanonicalJsonError):
        from_hex("zz" * 32)


def test_canonical_json_sorts_keys_and_strips_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [True, False, None], "c": {"z": "", "y": 2}}) == (
        b'{"a":[true,false,null],"b":1,"c":{"y":2,"z":""}}'
    )


def test_canonical_json_key_order_is_code_point_order() -> None:
    assert canonical_json({"b": 0, "B": 0, "é": 0, "a": 0}) == '{"B":0,"a":0,"b":0,"é":0}'.encode()


def test_canonical_json_floats_use_repr() -> None:
    values = [1.0, 0.1, 1e-05, -0.0, 1e16, 123456789.125, 5e-324, 2.5]
    assert canonical_json(values) == b"[1.0,0.1,1e-05,-0.0,1e+16,123456789.125,5e-324,2.5]"
    assert canonical_json(10**30) == b"1000000000000000000000000000000"


def test_canonical_json_utf8_and_escapes() -> None:
    # é as raw UTF-8; newline, quote, backslash and U+0001 escaped.
    assert canonical_json('é\n"\\\x01') == b'"\xc3\xa9\\n\\"\\\\\\u0001"'


def test_canonical_json_numpy_scalars_and_tuples() -> None:
    assert (
        canonical_json(
            [np.float64(0.5), np.float32(0.5), np.int64(7), np.bool_(True), np.str_("s"), (1, 2)]
        )
        == b'[0.5,0.5,7,true,"s",[1,2]]'
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_canonical_json_rejects_non_finite(bad: float) -> None:
    with pytest.raises(CanonicalJsonError, match="NaN/Infinity"):
        canonical_json({"x": [bad]})


@pytest.mark.parametrize(
    "bad", [{1: "a"}, {"a": b"bytes"}, {"a": {1, 2}}, object(), np.zeros(2), "\ud800"]
)
def test_canonical_json_rejects_what_it_cannot_encode_uniquely(bad: object) -> None:
    with pytest.raises(CanonicalJsonError) as info:
        canonical_json(bad)
    assert isinstance(info.value, MlError) and isinstance(info.value, ValueError)
    assert str(info.value)
