"""The flow commands: register, derive and show datasets, train and show models, predict,
lineage, and evidence bundles. Each is one or two API calls and a way to print the answer."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from api.cli._common import CommandFailed, emit, err, out, read_json, show_fields
from api.cli._service import ApiCall, check, service_command

__all__ = [
    "bundle",
    "dataset_derive",
    "dataset_register",
    "dataset_show",
    "lineage",
    "model_show",
    "model_train",
    "predict",
]

_DATASET_FIELDS = (
    "content_hash",
    "rows_root",
    "row_count",
    "schema_hash",
    "parents",
    "transform_hash",
    "tx_hash",
    "block_number",
    "revoked",
)
_MODEL_FIELDS = (
    "model_hash",
    "algorithm",
    "metadata_hash",
    "datasets",
    "tx_hash",
    "block_number",
    "revoked",
)


def _show_dataset(d: dict[str, Any]) -> None:
    columns = ", ".join(f"{c['name']}:{c['type']}" for c in d["columns"])
    show_fields([*((key, d.get(key)) for key in _DATASET_FIELDS), ("columns", columns)])


def _show_model(m: dict[str, Any]) -> None:
    metrics = ", ".join(f"{k}={v}" for k, v in m["metadata"].get("metrics", {}).items())
    show_fields([*((key, m.get(key)) for key in _MODEL_FIELDS), ("metrics", metrics)])


class _ProgressReader:
    """A file wrapper that advances a progress bar as httpx reads the upload."""

    def __init__(self, handle: Any, progress: Any, task: Any) -> None:
        self._handle, self._progress, self._task = handle, progress, task

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._progress.advance(self._task, len(chunk))
        return chunk


# -- datasets ---------------------------------------------------------------------------------


@service_command()
def dataset_register(
    call: ApiCall,
    files: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            readable=True,
            metavar="FILE...",
            help="a CSV file, several, or a directory (its files, not its subdirectories)",
        ),
    ],
    name: Annotated[str | None, typer.Option(help="a human name (one file only)")] = None,
    description: Annotated[
        str | None, typer.Option(help="what the data is (one file only)")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="files per request when registering several")
    ] = 250,
) -> None:
    """Upload and register CSV files; prints their hashes and chain coordinates.

    One file is one request; several (or a directory) go to the batch endpoint, a few requests
    at a time, and are registered in as few transactions as the chain's blocks allow."""
    if len(files) == 1 and files[0].is_file():
        _register_one(call, files[0], name, description)
        return
    if name or description:
        raise CommandFailed("--name and --description apply to one file, not to several")
    _register_many(call, _expand(files), batch_size)


def _register_one(call: ApiCall, file: Path, name: str | None, description: str | None) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    form = {k: v for k, v in (("name", name), ("description", description)) if v}
    with call.connect() as api, file.open("rb") as handle:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err,
            transient=True,
            disable=call.as_json,
        ) as progress:
            task = progress.add_task(f"uploading {file.name}", total=file.stat().st_size)
            reader = _ProgressReader(handle, progress, task)
            response = api.post("/v1/datasets", files={"file": (file.name, reader)}, data=form)
        result = check(response)
    if not call.as_json and response.status_code == 200:
        out.print("[yellow]already registered[/yellow]")
    call.emit(result, _show_dataset)


def _expand(paths: list[Path]) -> list[Path]:
    """The files named, and the regular, non-hidden files directly in each directory named
    (sorted by name), each once, in order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        else:
            found.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise CommandFailed("no files to register")
    return unique


_BATCH_BYTES = 32 * 1024 * 1024  # a request's files together, at most (one larger file alone)
_IN_FLIGHT = 4  # requests at once: the service gathers them into the same blocks


def _chunks(files: list[Path], batch_size: int) -> list[list[Path]]:
    chunks: list[list[Path]] = [[]]
    size = 0
    for file in files:
        length = file.stat().st_size
        if chunks[-1] and (len(chunks[-1]) >= batch_size or size + length > _BATCH_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(file)
        size += length
    return chunks


def _register_many(call: ApiCall, files: list[Path], batch_size: int) -> None:
    """Register ``files`` through ``POST /v1/datasets/batch``, a progress bar counting files
    answered; one line per file (or one JSON document), and exit 1 if any was refused."""
    from concurrent.futures import ThreadPoolExecutor

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    chunks = _chunks(files, batch_size)
    answers: list[list[dict[str, Any]]] = [[] for _ in chunks]
    with (
        call.connect() as api,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=call.as_json,
        ) as progress,
    ):
        task = progress.add_task("registering", total=len(files))

        def send(position: int) -> None:
            chunk = chunks[position]
            handles = [file.open("rb") for file in chunk]
            try:
                parts = [("file", (f.name, h)) for f, h in zip(chunk, handles, strict=True)]
                answers[position] = check(api.post("/v1/datasets/batch", files=parts))["data"]
            finally:
                for handle in handles:
                    handle.close()
            progress.advance(task, len(chunk))

        with ThreadPoolExecutor(_IN_FLIGHT) as pool:
            list(pool.map(send, range(len(chunks))))  # re-raises the first request that failed
    data = [entry for chunk in answers for entry in chunk]
    call.emit({"data": data, "count": len(data)}, _show_batch)
    if any(entry["status"] >= 400 for entry in data):
        raise CommandFailed(
            f"{sum(e['status'] >= 400 for e in data)} of {len(data)} file(s) were refused"
        )


def _show_batch(result: dict[str, Any]) -> None:
    """One line per file: what happened to it, its hash and block, or why it was refused."""
    labels = {201: "registered", 200: "already registered"}
    for entry in result["data"]:
        status = entry["status"]
        if status < 400:
            line = f"{labels[status]:<18} {entry['content_hash']}  block {entry['block_number']}"
        else:
            line = f"{'refused':<18} {entry['detail']} [{entry['type'].rsplit(':', 1)[-1]}]"
        out.print(f"{line}  {entry['file']}", markup=False, highlight=False)
    counts = Counter(e["status"] for e in result["data"])
    refused = sum(n for status, n in counts.items() if status >= 400)
    out.print(
        f"{counts[201]} registered, {counts[200]} already registered, {refused} refused",
        markup=False,
        highlight=False,
    )


def _post_json_file(call: ApiCall, url: str, path: Path, key: str) -> Any:
    """POST the JSON document in ``path``; a bare list is sent as ``{key: [...]}``."""
    data = read_json(path)
    body = data if isinstance(data, dict) else {key: data}
    with call.connect() as api:
        return check(api.post(url, json=body))


@service_command()
def dataset_derive(
    call: ApiCall,
    parent: Annotated[str, typer.Argument(help="the parent dataset's content hash")],
    steps: Annotated[Path, typer.Option(exists=True, help='JSON file: {"steps": [...]}')],
) -> None:
    """Clean a registered dataset with a transform spec and register the result."""
    call.emit(_post_json_file(call, f"/v1/datasets/{parent}/derive", steps, "steps"), _show_dataset)


@service_command()
def dataset_show(call: ApiCall, content_hash: str) -> None:
    """Show a registered dataset."""
    with call.connect() as api:
        call.emit(check(api.get(f"/v1/datasets/{content_hash}")), _show_dataset)


# -- models -----------------------------------------------------------------------------------


def _params(items: list[str]) -> dict[str, Any]:
    """``NAME=JSON`` pairs; a value that is not JSON is taken as a string."""
    params: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@service_command()
def model_train(
    call: ApiCall,
    dataset: Annotated[str, typer.Option(help="training dataset content hash")],
    algorithm: Annotated[str, typer.Option(help="e.g. linear_regression, ridge")],
    target: Annotated[str, typer.Option(help="the column to predict")],
    feature: Annotated[list[str] | None, typer.Option(help="a feature column (repeat)")] = None,
    param: Annotated[list[str] | None, typer.Option(help="NAME=JSON (repeat)")] = None,
    test_size: Annotated[float, typer.Option(help="held-out fraction, 0 for none")] = 0.2,
    seed: Annotated[int, typer.Option(help="split and estimator seed")] = 0,
) -> None:
    """Train a model deterministically on a registered dataset and register it."""
    body = {
        "dataset": dataset,
        "algorithm": algorithm,
        "target": target,
        "features": feature or None,
        "params": _params(param or []),
        "test_size": test_size,
        "seed": seed,
    }
    with call.connect() as api, err.status(f"training {algorithm}…"):
        result = check(api.post("/v1/models", json=body))
    call.emit(result, _show_model)


@service_command()
def model_show(call: ApiCall, model_hash: str) -> None:
    """Show a registered model with its metrics."""
    with call.connect() as api:
        call.emit(check(api.get(f"/v1/models/{model_hash}")), _show_model)


# -- predictions, lineage, bundles ------------------------------------------------------------


def _show_predictions(result: dict[str, Any]) -> None:
    receipts = result.get("receipts") or []
    for i, value in enumerate(result["predictions"]):
        receipt = receipts[i]["receipt_id"] if i < len(receipts) else "-"
        out.print(f"row {i}: {value}  receipt {receipt}", markup=False)  # a label may hold "[…]"


@service_command()
def predict(
    call: ApiCall,
    model: Annotated[str, typer.Argument(help="the model hash")],
    rows: Annotated[Path, typer.Option(exists=True, help="JSON file: a list of row objects")],
) -> None:
    """Predict with a registered model; every prediction comes with a signed receipt."""
    call.emit(_post_json_file(call, f"/v1/models/{model}/predict", rows, "rows"), _show_predictions)


def _show_graph(graph: dict[str, Any]) -> None:
    for node in graph["nodes"]:
        if node.get("revoked"):
            flag = f" [red]REVOKED[/red]: {escape(str(node.get('revoked_reason') or ''))}"
        elif node.get("tainted"):
            flag = " [red]TAINTED[/red] (built on revoked data)"
        else:
            flag = ""
        out.print(f"{node['kind']:>9} {node['id']}{flag}")
    for edge in graph["edges"]:
        out.print(f"  {edge['source']} --{edge['relation']}--> {edge['target']}")


@service_command()
def lineage(
    call: ApiCall,
    record: Annotated[str, typer.Argument(help="a dataset, model or batch hash")],
    direction: Annotated[str, typer.Option(help="up, down or both")] = "both",
    prov: Annotated[bool, typer.Option("--prov", help="W3C PROV-JSON")] = False,
) -> None:
    """Show where a record came from and what was built on it."""
    query = f"direction={direction}" + ("&format=prov" if prov else "")
    with call.connect() as api:
        graph = check(api.get(f"/v1/lineage/{record}?{query}"))
    emit(graph, call.as_json or prov, _show_graph)  # PROV-JSON has no human form


def _show_revoked(record: dict[str, Any]) -> None:
    revocation = record.get("revocation") or {}
    key = next(record[k] for k in ("content_hash", "model_hash", "root") if k in record)
    out.print(
        f"{record['kind']} {key} REVOKED in block {revocation.get('block_number')} "
        f"(transaction {revocation.get('tx_hash')}): {revocation.get('reason')}",
        markup=False,
    )


@service_command()
def revoke(
    call: ApiCall,
    record: Annotated[str, typer.Argument(help="a dataset, model or batch hash")],
    reason: Annotated[str, typer.Option(help="why: recorded on chain, shown to every auditor")],
) -> None:
    """Revoke a record for good; everything built on it is reported as tainted."""
    with call.connect() as api:
        result = check(api.post(f"/v1/records/{record}/revoke", json={"reason": reason}))
    call.emit(result, _show_revoked)


def _show_anchored(result: dict[str, Any]) -> None:
    batches = result.get("batches") or []
    if not batches:
        out.print("nothing to anchor: no receipt is pending")
    for batch in batches:
        where = f"block {batch.get('block_number')}" if not batch.get("error") else batch["error"]
        out.print(
            f"batch {batch['batch_id']}: {batch.get('count')} receipt(s), {where}", markup=False
        )


@service_command()
def anchor(call: ApiCall) -> None:
    """Anchor every pending receipt now, in Merkle batches."""
    with call.connect() as api:
        call.emit(check(api.post("/v1/anchor")), _show_anchored)


@service_command(json_output=False)
def bundle(
    call: ApiCall,
    receipt_id: Annotated[str, typer.Argument(help="the receipt id (0x...)")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="file to write")] = None,
) -> None:
    """Write the evidence bundle of a receipt: receipt, proof, lineage, chain coordinates."""
    with call.connect() as api:
        document = check(api.get(f"/v1/receipts/{receipt_id}/bundle"))
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if output:
        output.write_text(text)
        err.print(f"wrote {output} (verdict at bundling: {document['verification']['verdict']})")
    else:
        out.print(text, end="", markup=False, highlight=False)
