"""``provenance audit``: verify many receipts at once: a file of them, or a whole batch.

An auditor checking a month of predictions has a file of receipts (JSON or JSON lines), or asks
the service for every receipt of a batch (``GET /v1/batches/{id}/receipts``, as JSON lines).
The receipts are then verified either straight against a node (``--rpc-url`` and
``--contract``: :func:`ledger.verify.verify_documents`, reading each batch's and model's chain
facts once, trusting nothing but the node) or by the service (``--url``: ``POST
/v1/verify/receipts/file``, a chunk at a time). Either way the command shows a progress bar on
stderr and a summary table, or with ``--json`` prints ``{"summary", "reports"}``.

Against a node, ``--service URL`` also asks that service about a model or batch the node lacks,
once per record for the whole audit, as ``provenance verify --service`` does: while it answers
404 ``record-pending`` the receipts waiting on that record are pending, not invalid
(:mod:`ledger.verification.pending`). The service verifying (``--url``) says so by itself.

Like ``verify``, it imports neither scikit-learn nor skops; httpx only to talk to a service.

Exit status: 0 every receipt valid, 1 any invalid, 2 unreachable, 3 none invalid but some
pending, 4 the receipts file cannot be read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli._common import (
    DEFAULT_DATA_DIR,
    EXIT_FAILED,
    EXIT_UNREADABLE,
    ApiKeyOpt,
    CommandFailed,
    JsonOpt,
    command,
    err,
    out,
)
from api.cli.verify import (
    DEFAULT_CLOCK_TOLERANCE,
    EXIT_INVALID,
    EXIT_PENDING,
    ClockToleranceOpt,
    chain_facts,
    node_errors,
    service_pending,
)

__all__ = ["audit"]

_SHOWN_FAILURES = 20


def _read_file(path: Path) -> list[Any]:
    from ledger.formats.receipts import ReceiptError
    from ledger.verify import receipt_documents

    try:
        return receipt_documents(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandFailed(f"{path} is not a readable file: {exc}", EXIT_UNREADABLE) from None
    except ReceiptError as exc:
        raise CommandFailed(f"{path}: {exc}", EXIT_UNREADABLE) from None


def _fetch_batch(url: str, api_key: str | None, batch_id: str) -> list[Any]:
    """Every receipt of a batch, from the service's JSON-lines export."""
    from api.cli._service import check, connect

    with connect(url, DEFAULT_DATA_DIR, api_key) as http:
        response = http.get(f"/v1/batches/{batch_id}/receipts", params={"format": "jsonl"})
        if not response.is_success:
            check(response)  # raises with the problem's detail
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _on_node(
    documents: list[Any],
    rpc_url: str,
    contract: str,
    deploy_block: int,
    clock_tolerance: int,
    chunk: int,
    advance: Callable[[int], None],
    pending_of: Callable[[str], str | None] | None = None,
) -> list[dict[str, Any]]:
    from ledger.verification.pending import asked_once
    from ledger.verify import verify_documents

    facts = chain_facts(rpc_url, contract, deploy_block=deploy_block)
    ask = asked_once(pending_of) if pending_of is not None else None  # once per audit
    reports: list[dict[str, Any]] = []
    with node_errors(rpc_url):
        for part in _chunks(documents, chunk):  # one ChainFacts: each fact is read once
            verified = verify_documents(
                part, facts, clock_tolerance=clock_tolerance, pending_of=ask
            )
            reports += [r.to_json() for r in verified]
            advance(len(part))
    return reports


def _by_service(
    documents: list[Any], url: str, api_key: str | None, chunk: int, advance: Callable[[int], None]
) -> list[dict[str, Any]]:
    from api.cli._service import check, connect

    reports: list[dict[str, Any]] = []
    with connect(url, DEFAULT_DATA_DIR, api_key) as http:
        for part in _chunks(documents, chunk):
            lines = "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in part)
            answer = check(
                http.post(
                    "/v1/verify/receipts/file",
                    files={"file": ("receipts.jsonl", lines.encode(), "application/x-ndjson")},
                )
            )
            reports += answer["reports"]
            advance(len(part))
    return reports


def _summary(reports: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"valid": 0, "invalid": 0, "pending": 0}
    for report in reports:
        counts[report["verdict"]] += 1
    return counts


def _show(answer: dict[str, Any]) -> None:
    from rich.table import Table

    summary, reports = answer["summary"], answer["reports"]
    table = Table(title=f"{len(reports)} receipt(s) audited")
    table.add_column("verdict")
    table.add_column("receipts", justify="right")
    for verdict, colour in (("valid", "green"), ("invalid", "red"), ("pending", "yellow")):
        table.add_row(f"[{colour}]{verdict}[/{colour}]", str(summary[verdict]))
    out.print(table)
    invalid = [r for r in reports if r["verdict"] == "invalid"]
    if invalid:  # one line each, never wrapped or cut: receipt ids are meant to be copied
        out.print("invalid receipts:")
    for report in invalid[:_SHOWN_FAILURES]:
        failed = [c for c in report["checks"] if c["ok"] is False]
        names = ", ".join(c["name"] for c in failed)
        out.print(f" ✗ {report['subject']} {names}: {failed[0]['detail']}", markup=False,
                  highlight=False)  # fmt: skip
    if len(invalid) > _SHOWN_FAILURES:
        out.print(f"... and {len(invalid) - _SHOWN_FAILURES} more (see --json)")


@command
def audit(
    receipts_file: Annotated[
        Path | None,
        typer.Argument(
            exists=True, dir_okay=False, help="receipts as JSON (a list or {receipts}) or lines"
        ),
    ] = None,
    batch: Annotated[
        str | None, typer.Option("--batch", help="every receipt of this batch, from --url")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="PROVENANCE_URL", help="a running service: the verifier, or the source"
        ),
    ] = None,
    rpc_url: Annotated[
        str | None, typer.Option(help="verify against this node instead of the service")
    ] = None,
    contract: Annotated[
        str | None, typer.Option(help="the ledger contract address (with --rpc-url)")
    ] = None,
    deploy_block: Annotated[
        int, typer.Option(min=0, help="the contract's deployment block (bounds scans)")
    ] = 0,
    api_key: ApiKeyOpt = None,
    chunk: Annotated[
        int, typer.Option(min=1, max=10_000, help="receipts verified per step (or request)")
    ] = 5_000,
    clock_tolerance: ClockToleranceOpt = DEFAULT_CLOCK_TOLERANCE,
    service: Annotated[
        str | None,
        typer.Option(
            help="with --rpc-url: a service to ask about records the node lacks (pending, not "
            "invalid, while it says their writes are in flight)"
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify every receipt of a file, or of a batch fetched from the service.

    With --rpc-url and --contract the receipts are checked straight against that node (and
    --service is asked about records the node lacks); otherwise the service at --url checks
    them. Exit status: 0 all valid, 1 any invalid, 2 unreachable, 3 none invalid but some
    pending, 4 the file cannot be read.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    if (receipts_file is None) == (batch is None):
        raise CommandFailed("give a receipts file or --batch ID, not both or neither")
    if batch is not None and not url:
        raise CommandFailed("--batch needs --url: the service that issued the batch")
    if rpc_url and not contract:
        raise CommandFailed("--rpc-url needs --contract: the ledger to verify against")
    if not rpc_url and not url:
        raise CommandFailed("give --url (the service verifies) or --rpc-url and --contract")
    if service and not rpc_url:
        raise CommandFailed(
            "--service goes with --rpc-url: without it the service at --url verifies, and "
            "says pending by itself"
        )
    if batch is not None:
        assert url is not None
        documents = _fetch_batch(url, api_key, batch)
    else:
        assert receipts_file is not None
        documents = _read_file(receipts_file)
    if not documents:
        raise CommandFailed("no receipts to audit", EXIT_FAILED)

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("verifying", total=len(documents))

        def advance(done: int) -> None:
            progress.advance(task, done)

        if rpc_url:
            assert contract is not None
            pending_of = service_pending(service, api_key) if service else None
            reports = _on_node(
                documents,
                rpc_url,
                contract,
                deploy_block,
                clock_tolerance,
                chunk,
                advance,
                pending_of,
            )
        else:
            assert url is not None
            reports = _by_service(documents, url, api_key, chunk, advance)

    answer = {"summary": _summary(reports), "reports": reports}
    if as_json:  # plain: rich's pretty JSON of a hundred thousand reports takes minutes
        sys.stdout.write(json.dumps(answer) + "\n")
    else:
        _show(answer)
    if answer["summary"]["invalid"]:
        raise typer.Exit(EXIT_INVALID)
    if answer["summary"]["pending"]:
        raise typer.Exit(EXIT_PENDING)
