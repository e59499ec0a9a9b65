"""``provenance serve`` runs the HTTP service; ``provenance demo`` runs the whole flow on a worked
example in process and says what happened at each step."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli._common import (
    DEFAULT_DATA_DIR,
    ApiKeyOpt,
    CommandFailed,
    DataDirOpt,
    JsonOpt,
    UrlOpt,
    command,
    err,
    out,
)
from api.cli._service import check, connect

__all__ = ["DEMO_CSV", "SHUTDOWN_GRACE", "demo", "serve"]

SHUTDOWN_GRACE = 3  # seconds; `provenance serve` stops within about this after SIGTERM


@command
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="replica processes on this machine (2 or more need PROVENANCE_DATABASE_URL "
            "and an RPC chain)",
        ),
    ] = 1,
    fd: Annotated[int | None, typer.Option(hidden=True, help="accept on this socket")] = None,
) -> None:
    """Run the HTTP service (embedded chain by default: no configuration needed)."""
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from ledger.errors import LedgerError

    os.environ.setdefault("PROVENANCE_DATA_DIR", str(data_dir))
    settings = Settings(data_dir=data_dir)
    if workers > 1:
        from api.cli._workers import run_workers

        run_workers(settings, workers, host, port)
        return
    if fd is None:
        err.print(f"Provenance Ledger on http://{host}:{port} (docs at /docs), data in {data_dir}")
    try:
        app = create_app(settings)
    except LedgerError as exc:  # a database of another schema revision, or away: say so
        raise CommandFailed(str(exc)) from None

    class Server(uvicorn.Server):
        """SIGTERM/SIGINT: trainings in flight end at once (503, send again); every request
        then has SHUTDOWN_GRACE seconds to finish before it is cancelled."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if (service := getattr(app.state, "service", None)) is not None:
                service.stopping()

    where = {"fd": fd} if fd is not None else {"host": host, "port": port}
    config = uvicorn.Config(
        app, **where, log_level="info", timeout_graceful_shutdown=SHUTDOWN_GRACE
    )
    Server(config).run()


DEMO_CSV = (
    "x1,x2,y\n"
    "100,200,5000\n"
    "200,300,6000\n"
    "300,400,7000\n"
    "300,400,7000\n"  # a duplicate the cleaning step removes
    "250,,6500\n"  # a missing value the cleaning step removes
)


@command
def demo(
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="in process: where to keep the demo (default: a temporary directory, removed "
            "afterwards); with --url: where the service's admin.key is (default .provenance)",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole flow on the worked sales example and say what happened at each step.

    With ``--url`` (``PROVENANCE_URL``) it runs through that service, so its console shows the
    records; without, in a service of its own that is removed afterwards unless ``--data-dir``
    says where to keep it."""
    if url:
        _demo(url, data_dir or DEFAULT_DATA_DIR, api_key, as_json)
    elif data_dir is not None:
        _demo(None, data_dir, api_key, as_json)
    else:
        with tempfile.TemporaryDirectory(prefix="provenance-demo-") as work:
            _demo(None, Path(work), api_key, as_json)


def _demo(url: str | None, work: Path, api_key: str | None, as_json: bool) -> None:
    report: dict[str, Any] = {"service": url} if url else {"data_dir": str(work)}
    say = (lambda *a: None) if as_json else out.print
    with connect(url, work, api_key) as api:
        where = url or work
        say(f"[bold]1. Collect[/bold]: sales data with a duplicate and a gap, in {where}")
        raw = check(
            api.post(
                "/v1/datasets",
                files={"file": ("sales.csv", DEMO_CSV)},
                data={"name": "sales", "description": "worked example"},
            )
        )
        say(
            f"   registered raw dataset {raw['content_hash']} "
            f"({raw['row_count']} rows) in block {raw['block_number']}"
        )
        steps = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]
        clean = check(api.post(f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": steps}))
        say(
            f"[bold]2. Clean[/bold]: drop_duplicates + drop_missing -> {clean['content_hash']}"
            f" ({clean['row_count']} rows), parent {clean['parents'][0][:10]}…"
        )
        model = check(
            api.post(
                "/v1/models",
                json={
                    "dataset": clean["content_hash"],
                    "algorithm": "linear_regression",
                    "target": "y",
                    "test_size": 0,
                    "seed": 0,
                },
            )
        )
        metrics = model["metadata"]["metrics"]
        say(
            f"[bold]3. Train[/bold]: linear regression {model['model_hash']}, "
            f"R² = {metrics.get('r2')}"
        )
        prediction = check(
            api.post(
                f"/v1/models/{model['model_hash']}/predict",
                json={"rows": [{"x1": 150, "x2": 250}]},
            )
        )
        say(f"[bold]4. Predict[/bold]: x1=150, x2=250 -> y = {prediction['predictions'][0]}")
        graph = check(api.get(f"/v1/lineage/{model['model_hash']}?direction=up"))
        say(
            f"[bold]5. Lineage[/bold] of the model: {len(graph['nodes'])} nodes, "
            f"{len(graph['edges'])} edges"
        )
        for edge in graph["edges"]:
            say(f"   {edge['source'][:24]}… --{edge['relation']}--> {edge['target'][:24]}…")
        receipt_id = prediction["receipts"][0]["receipt_id"]
        check(api.post("/v1/anchor"))  # a running service's anchorer may have done it already
        receipt = check(api.get(f"/v1/receipts/{receipt_id}"))
        verdict = check(api.post("/v1/verify/receipt", json={"receipt": receipt}))
        passed = sum(1 for c in verdict["checks"] if c["ok"])
        say(
            f"[bold]6. Verify[/bold]: receipt {receipt_id[:18]}… anchored in batch "
            f"{str(receipt.get('batch_id'))[:18]}…; verdict "
            f"[green]{verdict['verdict']}[/green] ({passed} checks passed)"
        )
        report.update(
            raw=raw,
            clean=clean,
            model=model,
            prediction=prediction,
            lineage=graph,
            receipt=receipt,
            verification=verdict,
        )
    if as_json:
        out.print_json(json.dumps(report))
