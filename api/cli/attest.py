"""``provenance attest`` writes a record's in-toto attestations and the key that signed them;
``provenance verify-attestation`` checks them straight against a node, trusting nothing else.

Exit status of ``verify-attestation``: 0 valid, 1 invalid (its failed check names the reason:
``key_binding``, ``signature``, ``subject``, ``registered``, ``dependencies``), 2 node
unreachable, 4 the files cannot be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli._common import EXIT_UNREADABLE, CommandFailed, JsonOpt, command, emit, err
from api.cli._service import ApiCall, check, service_command
from api.cli.verify import EXIT_INVALID, _show_report, chain_facts, node_errors

__all__ = ["attest", "key_file_for", "verify_attestation"]


def key_file_for(attestations: Path) -> Path:
    """Where the key binding of ``model.intoto.jsonl`` goes by default: ``model.key.json``."""
    name = attestations.name.removesuffix(".jsonl").removesuffix(".intoto")
    return attestations.with_name(f"{name}.key.json")


KeyFileOpt = Annotated[
    Path | None,
    typer.Option("--key-file", help="the attestation key and its binding (default: FILE.key.json)"),
]


@service_command(json_output=False)
def attest(
    call: ApiCall,
    record: Annotated[str, typer.Argument(help="a derived dataset's or a model's hash")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the .intoto.jsonl to write")],
    key_file: KeyFileOpt = None,
) -> None:
    """Write the in-toto/SLSA attestations of a derived dataset or a model, and the key."""
    with call.connect() as api:
        response = api.get(f"/v1/models/{record}/attestations")
        if response.status_code == 404:
            response = api.get(f"/v1/datasets/{record}/attestations")
        if not response.is_success:
            check(response)  # raises with the problem's detail
        key = check(api.get("/v1/attestation-key"))
    output.write_text(response.text)
    key_path = key_file or key_file_for(output)
    key_path.write_text(json.dumps(key, indent=2) + "\n")
    err.print(f"wrote {output} and its key {key_path}")


def _read_lines(path: Path) -> list[Any]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise CommandFailed(f"cannot read {path}: {exc}", EXIT_UNREADABLE) from None


@command
def verify_attestation(
    attestations: Annotated[Path, typer.Argument(help="an .intoto.jsonl file")],
    rpc_url: Annotated[str, typer.Option(help="any Ethereum JSON-RPC node (or a service's /rpc)")],
    contract: Annotated[str, typer.Option(help="the ledger contract address")],
    key_file: KeyFileOpt = None,
    artifact: Annotated[
        Path | None, typer.Option(help="the artifact's file, to compare with the subject")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check attestations against a node: key bound on chain, signatures, subject, record,
    dependencies. Exit status: 0 valid, 1 invalid, 2 node unreachable, 4 unreadable input."""
    from ledger.attest.check import verify_attestations
    from ledger.attest.key import AttestationError, KeyBinding

    envelopes = _read_lines(attestations)
    key_path = key_file or key_file_for(attestations)
    try:
        key = json.loads(key_path.read_text())
        binding = KeyBinding.from_json(key.get("binding", key))
    except (OSError, ValueError, AttributeError, AttestationError) as exc:
        raise CommandFailed(
            f"cannot read the key file {key_path}: {exc}", EXIT_UNREADABLE
        ) from None
    try:
        data = artifact.read_bytes() if artifact else None
    except OSError as exc:
        raise CommandFailed(f"--artifact {artifact}: {exc}", EXIT_UNREADABLE) from None
    facts = chain_facts(rpc_url, contract)
    with node_errors(rpc_url):
        report = verify_attestations(envelopes, binding, facts, artifact=data).to_json()
    emit(report, as_json, _show_report)
    if report["verdict"] != "valid":
        raise typer.Exit(EXIT_INVALID)
