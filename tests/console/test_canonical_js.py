"""The browser hashes what Python signs: ``web/src/verify/json.js`` writes every value as
``ml.hashing.canonical_json`` does (floats by Python's repr, strings escaped as Python escapes
them, keys in code-point order), after parsing it as ``json.loads`` does (``5000.0`` stays a
float, big integers stay exact). Checked in node on fixed hard cases and random doubles."""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ml.hashing import canonical_json

JSON_JS = Path(__file__).resolve().parents[2] / "web" / "src" / "verify" / "json.js"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

RUNNER = """
import { parseJson, canonicalJson } from %s;
let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const out = parseJson(input).map((value) => {
  try { return canonicalJson(value); } catch (error) { return { refused: error.constructor.name }; }
});
process.stdout.write(JSON.stringify(out));
"""

HARD_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    0.2,
    0.30000000000000004,
    2.5,
    100.0,
    5000.0,
    6250.000000000002,
    1e-05,
    1.5e-05,
    0.0001,
    0.00012,
    1e15,
    1e16,
    1.2345e16,
    9007199254740993.0,
    1e22,
    1e100,
    123456789012345680.0,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    1 / 3,
    2 / 3,
    123.456,
    -987654.321,
    0.5,
    4.35,
    1e21,
    1e-7,
    3.14159e-10,
]
HARD_VALUES: list[Any] = [
    5000,
    -0,
    2**70,
    -(2**64) + 1,
    True,
    False,
    None,
    "",
    "plain",
    'quote" back\\slash',
    "\n\r\t\b\f\x00\x01\x1f\x7f",
    "é ü 漢字 😀",
    "\u2028\u2029",
    "/slash",
    {"b": 1, "a": [1, 2.0, {"z": None, "y": "x"}]},
    {"\U0001f600": 1, "\uffff": 2, "\ue000": 3, "a": 4, "A": 5, "é": 6},  # code-point order
    {"label": "yes", "probabilities": {"no": 0.1234, "yes": 0.8766}},
    [[[[[]]]]],
    {"x1": 150, "x2": 250},
]


def _random_doubles(count: int, seed: int = 16) -> list[float]:
    rng = random.Random(seed)
    found = []
    while len(found) < count:
        value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            found.append(value)
    found += [rng.uniform(-1e6, 1e6) for _ in range(count // 4)]
    found += [round(rng.uniform(0, 100), rng.randrange(0, 6)) for _ in range(count // 4)]
    return found


def _canonical_in_node(values: list[Any], tmp_path: Path) -> list[Any]:
    runner = tmp_path / "run.mjs"
    runner.write_text(RUNNER % json.dumps(JSON_JS.as_uri()))
    text = json.dumps(values, allow_nan=True)  # ASCII, so a lone surrogate travels escaped
    done = subprocess.run(
        ["node", str(runner)], input=text, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_browser_writes_canonical_json_as_python_does(tmp_path: Path) -> None:
    values = HARD_VALUES + HARD_FLOATS + _random_doubles(8_000)
    expected = [canonical_json(v).decode("utf-8") for v in values]
    got = _canonical_in_node(values, tmp_path)
    wrong = [(v, e, g) for v, e, g in zip(values, expected, got, strict=True) if e != g]
    assert wrong == [], wrong[:10]


def test_the_browser_refuses_what_python_refuses(tmp_path: Path) -> None:
    refused = [math.nan, math.inf, -math.inf, "lone \ud800 surrogate", {"k": [math.nan]}]
    got = _canonical_in_node(refused, tmp_path)
    assert got == [{"refused": "CanonicalJsonError"}] * len(refused)
    for value in refused:
        with pytest.raises(ValueError):
            canonical_json(value)


def test_the_parser_keeps_what_json_parse_would_lose(tmp_path: Path) -> None:
    text = "[5000.0, 5000, 1E2, -0, 12345678901234567890123, 1.0e-5]"
    runner = tmp_path / "parse.mjs"
    runner.write_text(
        f"import {{ parseJson, canonicalJson }} from {json.dumps(JSON_JS.as_uri())};\n"
        f"const values = parseJson({json.dumps(text)});\n"
        "process.stdout.write(JSON.stringify(values.map((v) => canonicalJson(v))));"
    )
    done = subprocess.run(["node", str(runner)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [canonical_json(v).decode() for v in json.loads(text)]
