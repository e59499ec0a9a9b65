"""``provenance verify``: check a receipt or an evidence bundle straight against a node.

It trusts nothing but the node it is given: no service, no index, no API. It is what an auditor
runs, often, so it must start fast: the ``ledger`` modules are imported inside the command, and
nothing on its path imports web3, scikit-learn, skops, FastAPI or httpx (``tests/api/
test_cli_imports.py`` holds it to that): the node is read with :mod:`ledger.reading.chain_reader`
over the standard library's HTTP client.

The blocks a bundle or an anchored receipt names are where its events are looked for first;
each is checked against the event found there (``block_hints``), never trusted, and a chain is
scanned only for what the evidence does not place.

``--service URL`` also asks that service about a record the node does not hold (the receipt's
model or batch): when the service answers 404 ``record-pending`` (its write is queued, in a pool,
or sent again after a reorganisation), the check says so and the verdict is ``pending``, not
``invalid`` (:mod:`ledger.verification.pending`). Its word never passes a check: a record the
node holds is judged by the node alone.

Exit status: 0 valid, 1 invalid, 2 node unreachable, 3 pending, 4 the input cannot be read (not
JSON, or not a receipt or bundle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from api.cli._common import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_UNREADABLE,
    CommandFailed,
    JsonOpt,
    command,
    emit,
    out,
    read_json,
)

if TYPE_CHECKING:
    from ledger.formats.receipts import Receipt
    from ledger.reading.chain_facts import ChainFacts
    from ledger.verify import Anchoring, BlockClaims

__all__ = [
    "DEFAULT_CLOCK_TOLERANCE",
    "EXIT_INVALID",
    "EXIT_PENDING",
    "EXIT_UNREACHABLE",
    "ClockToleranceOpt",
    "chain_facts",
    "node_errors",
    "service_pending",
    "verify",
]

EXIT_INVALID = EXIT_FAILED
EXIT_PENDING = 3

_MARKS = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[yellow]·[/yellow]"}
_COLOURS = {"valid": "green", "invalid": "red", "pending": "yellow"}

# ledger.verify.DEFAULT_CLOCK_TOLERANCE, written out: --help must not import the ledger
DEFAULT_CLOCK_TOLERANCE = 60
ClockToleranceOpt = Annotated[
    int,
    typer.Option(
        min=0, help="seconds of clock skew allowed between a receipt's issuer and the chain"
    ),
]


def _show_report(report: dict[str, Any]) -> None:
    for check in report["checks"]:
        out.print(f" {_MARKS[check['ok']]} {check['name']:<23} {check['detail']}")
    colour = _COLOURS[report["verdict"]]
    out.print(f"verdict: [bold {colour}]{report['verdict']}[/bold {colour}]")


@dataclass(frozen=True)
class _Evidence:
    """What a receipt file (a bare receipt or a bundle) gives the verifier."""

    receipt: Receipt
    anchoring: Anchoring | None
    claims: BlockClaims
    contract: str
    deploy_block: int
    input_row: Any


def _read_evidence(path: Path, contract: str | None, input_file: Path | None) -> _Evidence:
    """The receipt, its anchoring, the blocks it names, the contract and the input row, each
    checked for form."""
    from ledger.formats.receipts import ReceiptError
    from ledger.verify import BlockClaims, evidence_from_document

    document = read_json(path)
    receipt_doc = document.get("receipt", document) if isinstance(document, dict) else None
    if not isinstance(receipt_doc, dict):
        raise CommandFailed(f"{path} is not a receipt: it holds no JSON object", EXIT_UNREADABLE)
    input_row = read_json(input_file) if input_file else document.get("input")
    ledger = document.get("ledger") if isinstance(document.get("ledger"), dict) else {}
    address = contract or ledger.get("contract")
    if not address:
        raise CommandFailed("--contract is required for a bare receipt", EXIT_UNREADABLE)
    deploy_block = ledger.get("deploy_block", 0) if not contract else 0
    is_bundle = receipt_doc is not document
    try:
        evidence = evidence_from_document(receipt_doc)
        claims = BlockClaims.from_records(document.get("records")) if is_bundle else BlockClaims()
    except (ValueError, ReceiptError) as exc:
        raise CommandFailed(f"{path} is not a receipt: {exc}", EXIT_UNREADABLE) from None
    if type(deploy_block) is not int or deploy_block < 0:
        raise CommandFailed(
            f"{path} is not a receipt: malformed ledger.deploy_block", EXIT_UNREADABLE
        )
    return _Evidence(evidence.receipt, evidence.anchoring, claims, address, deploy_block, input_row)


def chain_facts(rpc_url: str, contract: str, *, deploy_block: int = 0) -> ChainFacts:
    """Facts about the ledger at ``contract``, read from the node at ``rpc_url`` only.

    A bundle's deployment block only bounds scans: a wrong one can hide events (failing
    checks), never invent them."""
    from ledger.reading._jsonrpc import HttpTransport
    from ledger.reading.chain_facts import ChainFacts
    from ledger.reading.chain_reader import LedgerReader

    try:
        transport = HttpTransport(rpc_url, timeout=30)
    except ValueError as exc:
        raise CommandFailed(f"--rpc-url {rpc_url}: {exc}", EXIT_FAILED) from None
    try:
        reader = LedgerReader(transport, contract, deploy_block=deploy_block)
    except ValueError as exc:  # not an address
        raise CommandFailed(f"--contract {contract}: {exc}", EXIT_INVALID) from None
    return ChainFacts(reader)


@contextmanager
def node_errors(rpc_url: str) -> Iterator[None]:
    """Turn the node's failures into a command's: unreachable (or not answering JSON-RPC) is
    exit 2, naming the ``--rpc-url`` the user typed, an address where no ledger answers (or any
    other refusal) is exit 1."""
    from ledger.errors import ChainUnavailable, LedgerError
    from ledger.reading._jsonrpc import NodeError

    try:
        yield
    except (ChainUnavailable, NodeError) as exc:
        reason = exc.args[0] if exc.args else exc  # without the service's settings hint
        raise CommandFailed(
            f"--rpc-url {rpc_url}: {reason} (is the node running, and is this its URL?)",
            EXIT_UNREACHABLE,
        ) from None
    except LedgerError as exc:  # the node answers, but not as a ledger contract would
        raise CommandFailed(str(exc), EXIT_INVALID) from None


def service_pending(service: str, api_key: str | None = None) -> Callable[[str], str | None]:
    """What the service at ``service`` says of a record: ``"the service at URL says: <detail>"``
    when it answers ``GET /v1/records/{hash}`` with 404 ``record-pending``, else None (any
    other answer, or no answer: the node's word stands). The standard library's HTTP client,
    so that the command stays fast to start."""
    import json
    import urllib.error
    import urllib.request

    headers = {"Accept": "application/problem+json, application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"

    def pending_of(record_hash: str) -> str | None:
        url = f"{service.rstrip('/')}/v1/records/{record_hash}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30):
                return None  # registered, as the service reads it: the node decides
        except urllib.error.HTTPError as answer:
            try:
                problem = json.loads(answer.read())
            except ValueError:
                return None
            if answer.code != 404 or not str(problem.get("type", "")).endswith(":record-pending"):
                return None
            return f"the service at {service} says: {problem.get('detail', 'pending')}"
        except (OSError, ValueError):
            return None

    return pending_of


def _check_on_chain(
    evidence: _Evidence,
    rpc_url: str,
    artifacts: Path | None,
    clock_tolerance: int,
    pending_of: Callable[[str], str | None] | None = None,
) -> dict[str, Any]:
    """The verification report of ``evidence`` against the node at ``rpc_url``; with
    ``pending_of``, a record the node lacks and it vouches for is pending."""
    from ledger.storage.artifacts import ArtifactStore
    from ledger.verification.pending import with_pending
    from ledger.verify import verify_receipt

    facts = chain_facts(rpc_url, evidence.contract, deploy_block=evidence.deploy_block)
    with node_errors(rpc_url):
        report = verify_receipt(
            evidence.receipt,
            facts,
            anchoring=evidence.anchoring,
            store=ArtifactStore(artifacts) if artifacts else None,
            input_row=evidence.input_row,
            claims=evidence.claims,
            clock_tolerance=clock_tolerance,
        )
    if pending_of is not None:
        subjects = {"model_registered": "0x" + bytes(evidence.receipt.model_hash).hex()}
        if evidence.anchoring is not None:
            subjects["batch_anchored"] = evidence.anchoring.batch_id
        report = with_pending(report, subjects, pending_of)
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
    clock_tolerance: ClockToleranceOpt = DEFAULT_CLOCK_TOLERANCE,
    service: Annotated[
        str | None,
        typer.Option(
            help="a service to ask about records the node lacks (pending, not invalid, while "
            "it says their writes are in flight)"
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="PROVENANCE_API_KEY", help="an API key for --service, if it needs one"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a receipt straight against a node, trusting nothing else.

    Exit status: 0 valid, 1 invalid, 2 node unreachable, 3 pending (not anchored yet), 4 the
    input cannot be read.
    """
    evidence = _read_evidence(receipt_file, contract, input_file)
    pending_of = service_pending(service, api_key) if service else None
    report = _check_on_chain(evidence, rpc_url, artifacts, clock_tolerance, pending_of)
    emit(report, as_json, _show_report)
    if report["verdict"] != "valid":
        raise typer.Exit(EXIT_INVALID if report["verdict"] == "invalid" else EXIT_PENDING)
