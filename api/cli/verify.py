"""``provenance verify``: check a receipt or an evidence bundle straight against a node.

It trusts nothing but the node it is given: no service, no index, no API. It is what an auditor
runs, often, so it must start fast: the ``ledger`` modules are imported inside the command, and
nothing on its path imports scikit-learn, skops, FastAPI or httpx (``tests/api/
test_cli_imports.py`` holds it to that).

Exit status: 0 valid, 1 invalid (or not a receipt), 2 node unreachable, 3 pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from api.cli._common import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    CommandFailed,
    JsonOpt,
    command,
    emit,
    out,
    read_json,
)

if TYPE_CHECKING:
    from ledger.receipts import Receipt
    from ledger.verify import Anchoring

__all__ = ["EXIT_INVALID", "EXIT_PENDING", "EXIT_UNREACHABLE", "verify"]

EXIT_INVALID = EXIT_FAILED
EXIT_PENDING = 3

_MARKS = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[yellow]·[/yellow]"}
_COLOURS = {"valid": "green", "invalid": "red", "pending": "yellow"}


def _show_report(report: dict[str, Any]) -> None:
    for check in report["checks"]:
        out.print(f" {_MARKS[check['ok']]} {check['name']:<18} {check['detail']}")
    colour = _COLOURS[report["verdict"]]
    out.print(f"verdict: [bold {colour}]{report['verdict']}[/bold {colour}]")


@dataclass(frozen=True)
class _Evidence:
    """What a receipt file (a bare receipt or a bundle) gives the verifier."""

    receipt: Receipt
    anchoring: Anchoring | None
    contract: str
    input_row: Any


def _read_evidence(path: Path, contract: str | None, input_file: Path | None) -> _Evidence:
    """The receipt, its anchoring, the contract and the input row, each checked for form."""
    from ledger.receipts import Receipt, ReceiptError
    from ledger.verify import Anchoring

    document = read_json(path)
    receipt_doc = document.get("receipt", document) if isinstance(document, dict) else None
    if not isinstance(receipt_doc, dict):
        raise CommandFailed(f"{path} is not a receipt: it holds no JSON object", EXIT_INVALID)
    input_row = read_json(input_file) if input_file else document.get("input")
    ledger = document.get("ledger")
    address = contract or (ledger.get("contract") if isinstance(ledger, dict) else None)
    if not address:
        raise CommandFailed("--contract is required for a bare receipt", EXIT_INVALID)
    try:
        receipt = Receipt.model_validate({k: receipt_doc.get(k) for k in Receipt.model_fields})
        anchoring = Anchoring.from_json(receipt_doc)
    except (ValueError, ReceiptError) as exc:
        raise CommandFailed(f"{path} is not a receipt: {exc}", EXIT_INVALID) from None
    return _Evidence(receipt, anchoring, address, input_row)


def _check_on_chain(evidence: _Evidence, rpc_url: str, artifacts: Path | None) -> dict[str, Any]:
    """The verification report of ``evidence`` against the node at ``rpc_url``."""
    from ledger.backends.rpc import RpcBackend
    from ledger.client import LedgerClient
    from ledger.errors import ChainUnavailable, LedgerError
    from ledger.store import ArtifactStore
    from ledger.verify import verify_receipt

    try:
        reader = LedgerClient.reader(RpcBackend(rpc_url), evidence.contract)
    except ValueError as exc:  # not an address
        raise CommandFailed(f"--contract {evidence.contract}: {exc}", EXIT_INVALID) from None
    try:
        report = verify_receipt(
            evidence.receipt,
            reader,
            anchoring=evidence.anchoring,
            store=ArtifactStore(artifacts) if artifacts else None,
            input_row=evidence.input_row,
        )
    except ChainUnavailable as exc:
        raise CommandFailed(str(exc), EXIT_UNREACHABLE) from None
    except LedgerError as exc:  # the node answers, but not as a ledger contract would
        raise CommandFailed(str(exc), EXIT_INVALID) from None
    return report.to_json()


@command
def verify(
    receipt_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="a receipt or an evidence bundle")
    ],
    rpc_url: Annotated[str, typer.Option(help="any Ethereum JSON-RPC node (or a service's /rpc)")],
    contract: Annotated[
        str | None, typer.Option(help="the ledger contract address (default: the bundle's)")
    ] = None,
    artifacts: Annotated[
        Path | None, typer.Option(help="an artifact store directory to check files against")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="JSON file with the input row")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a receipt straight against a node, trusting nothing else.

    Exit status: 0 valid, 1 invalid, 2 node unreachable, 3 pending (not anchored yet).
    """
    report = _check_on_chain(_read_evidence(receipt_file, contract, input_file), rpc_url, artifacts)
    emit(report, as_json, _show_report)
    if report["verdict"] != "valid":
        raise typer.Exit(EXIT_INVALID if report["verdict"] == "invalid" else EXIT_PENDING)
