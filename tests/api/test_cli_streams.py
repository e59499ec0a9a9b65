"""``provenance stream create|show|send|seal|versions|proof`` against a running service
(``--url``), for people and with ``--json``; a bad column spec and an unknown stream are one
line and an exit status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from api.devserver import ServiceProcess
from tests.api.test_cli import cli


def test_the_stream_commands(tmp_path: Path) -> None:
    readings = tmp_path / "readings.jsonl"
    lines = [{"id": f"r{i}", "seq": i, "value": i / 4} for i in range(5)]
    lines.append({"id": "bad", "seq": "x", "value": 1.0})
    readings.write_text("\n".join(json.dumps(r) for r in lines))
    with ServiceProcess(tmp_path / "data", env={"PROVENANCE_ANCHOR_INTERVAL": "3600"}) as server:
        shared = ("--url", server.url, "--data-dir", server.data_dir)

        def run(*args: Any, code: int = 0) -> str:
            return cli(*args, *shared, code=code).stdout

        created = json.loads(
            run("stream", "create", "meters", "--column", "seq:integer",
                "--column", "value:float", "--seal-readings", "100", "--json")
        )  # fmt: skip
        assert created["columns"] == [
            {"name": "seq", "type": "integer"},
            {"name": "value", "type": "float"},
        ]
        said = run("stream", "send", "meters", readings)
        assert "5 stored, 0 duplicate(s), 1 dead letter(s)" in said and "#5:" in said
        assert "v1 0x" in run("stream", "seal", "meters")
        [version] = json.loads(run("stream", "versions", "meters", "--json"))["data"]
        assert version["readings"] == 5
        proof = run("stream", "proof", "meters", "r3")
        assert "row in chunk: ok; chunk in version: ok" in proof and version["hash"] in proof
        shown = json.loads(run("stream", "show", "meters", "--json"))
        assert (shown["readings"], shown["dead_letters"]) == (5, 1)

        bad = cli("stream", "create", "x", "--column", "seq", *shared, code=1)
        assert "NAME:TYPE" in bad.stdout + bad.stderr
        missing = cli("stream", "seal", "nope", *shared, code=1)
        assert "HTTP 404" in missing.stdout + missing.stderr
        assert "unknown-stream" in missing.stdout + missing.stderr
