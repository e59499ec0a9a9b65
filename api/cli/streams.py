"""``provenance stream``: define a stream, send readings, seal, list versions, prove a reading.

Each is one API call (:mod:`api.cli._service`). ``proof`` also checks the answer where it runs:
the row against the chunk's rows root, the chunk against the version's root, with
:mod:`ledger.formats.merkle` (the OpenZeppelin conventions); the roots themselves are the ones
the service read from the chain, which ``provenance verify`` checks without the service.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli._common import CommandFailed, out, show_fields
from api.cli._service import ApiCall, check, service_command

__all__ = [
    "stream_create",
    "stream_proof",
    "stream_seal",
    "stream_send",
    "stream_show",
    "stream_versions",
]

_TYPES = ("integer", "float", "string", "boolean")


def _columns(specs: list[str]) -> list[dict[str, str]]:
    columns = []
    for spec in specs:
        name, _, kind = spec.partition(":")
        if not name or kind not in _TYPES:
            raise CommandFailed(f"--column {spec!r}: write NAME:TYPE, TYPE one of {_TYPES}")
        columns.append({"name": name, "type": kind})
    return columns


def _show_stream(s: dict[str, Any]) -> None:
    columns = ", ".join(f"{c['name']}:{c['type']}" for c in s["columns"])
    show_fields(
        [
            ("name", s["name"]),
            ("columns", columns),
            ("seals", f"every {s['seal_readings']} readings or {s['seal_seconds']} s"),
            ("readings", s["readings"]),
            ("pending", s["pending"]),
            ("versions", s["versions"]),
            ("latest_version", s["latest_version"]),
            ("dead_letters", s["dead_letters"]),
            ("topic", s["topic"]),
        ]
    )


@service_command()
def stream_create(
    call: ApiCall,
    name: Annotated[str, typer.Argument(help="the stream's name (also its MQTT topic's end)")],
    column: Annotated[list[str], typer.Option(help="NAME:TYPE (repeat, in order)")],
    seal_readings: Annotated[int, typer.Option(help="seal every N readings")] = 10_000,
    seal_seconds: Annotated[float, typer.Option(help="or when the oldest waits T s")] = 60.0,
) -> None:
    """Define a stream: its columns and when it seals."""
    body = {
        "name": name,
        "columns": _columns(column),
        "seal_readings": seal_readings,
        "seal_seconds": seal_seconds,
    }
    with call.connect() as api:
        call.emit(check(api.post("/v1/streams", json=body)), _show_stream)


@service_command()
def stream_show(call: ApiCall, name: str) -> None:
    """Show a stream: definition, readings, versions, dead letters."""
    with call.connect() as api:
        call.emit(check(api.get(f"/v1/streams/{name}")), _show_stream)


@service_command()
def stream_send(
    call: ApiCall,
    name: str,
    file: Annotated[
        Path, typer.Argument(help="a JSON array or JSON lines of readings; - for stdin")
    ] = Path("-"),
) -> None:
    """Send readings; answered once they are stored (bad ones go to the dead letters)."""
    body = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    with call.connect() as api:
        result = check(
            api.post(
                f"/v1/streams/{name}/readings",
                content=body,
                headers={"Content-Type": "application/json"},
            )
        )

    def human(r: dict[str, Any]) -> None:
        out.print(
            f"{r['accepted']} stored, {r['duplicates']} duplicate(s), "
            f"{r['dead_letters']} dead letter(s)"
        )
        for refused in r["refused"]:
            out.print(f"  #{refused['index']}: {refused['reason']}", markup=False)

    call.emit(result, human)


def _show_versions(result: dict[str, Any]) -> None:
    if not result["data"]:
        out.print("no version")
    for v in result["data"]:
        out.print(
            f"v{v['number']} {v['hash']}  {v['readings']} readings  "
            f"chunk {v['chunk']['hash']} ({v['chunk']['readings']})",
            markup=False,
        )


@service_command()
def stream_seal(call: ApiCall, name: str) -> None:
    """Seal the waiting readings now; prints the versions made."""
    with call.connect() as api:
        call.emit(check(api.post(f"/v1/streams/{name}/seal")), _show_versions)


@service_command()
def stream_versions(
    call: ApiCall,
    name: str,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 20,
) -> None:
    """List a stream's versions, newest first."""
    with call.connect() as api:
        call.emit(
            check(api.get(f"/v1/streams/{name}/versions", params={"limit": limit})),
            _show_versions,
        )


@service_command()
def stream_proof(
    call: ApiCall,
    name: str,
    reading_id: str,
    version: Annotated[str | None, typer.Option(help="a version hash (default: latest)")] = None,
) -> None:
    """A reading's proof: its row in its chunk, the chunk's place in the version; checked here."""
    from ledger.formats.merkle import leaf_hash, verify_proof
    from ml.hashing import canonical_json, sha256_bytes, to_hex

    params = {"version": version} if version else {}
    with call.connect() as api:
        proof = check(api.get(f"/v1/streams/{name}/readings/{reading_id}/proof", params=params))
    digest = sha256_bytes(canonical_json(proof["row"]))
    row_ok = to_hex(digest) == proof["row_digest"] and verify_proof(
        proof["root"], leaf_hash(proof["leaf_encoding"], [proof["index"], digest]), proof["proof"]
    )
    chunk_leaf = leaf_hash(proof["chunk_leaf_encoding"], proof["chunk_leaf"])
    chunk_ok = verify_proof(proof["version_root"], chunk_leaf, proof["chunk_proof"])
    if not (row_ok and chunk_ok):
        raise CommandFailed(
            f"the proof does not hold: row {'ok' if row_ok else 'FAILS'}, "
            f"chunk {'ok' if chunk_ok else 'FAILS'}"
        )

    def human(p: dict[str, Any]) -> None:
        show_fields(
            [
                ("reading", p["id"]),
                ("row", p["row"]),
                ("chunk", f"{p['chunk']} row {p['index']} (rows root {p['root']})"),
                ("version", f"{p['version']} (rows root {p['version_root']})"),
                ("checked", "row in chunk: ok; chunk in version: ok"),
            ]
        )

    call.emit(proof, human)
