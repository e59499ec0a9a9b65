"""The flow commands: register, derive and show datasets, train and show models, predict,
lineage, and evidence bundles. Each is one or two API calls and a way to print the answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli._common import emit, err, out, read_json, show_fields
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
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    name: Annotated[str | None, typer.Option(help="a human name")] = None,
    description: Annotated[str | None, typer.Option(help="what the data is")] = None,
) -> None:
    """Upload and register a CSV file; prints its hashes and chain coordinates."""
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


@service_command()
def dataset_derive(
    call: ApiCall,
    parent: Annotated[str, typer.Argument(help="the parent dataset's content hash")],
    steps: Annotated[Path, typer.Option(exists=True, help='JSON file: {"steps": [...]}')],
) -> None:
    """Clean a registered dataset with a transform spec and register the result."""
    spec = read_json(steps)
    body = spec if isinstance(spec, dict) else {"steps": spec}
    with call.connect() as api:
        result = check(api.post(f"/v1/datasets/{parent}/derive", json=body))
    call.emit(result, _show_dataset)


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
    for i, value in enumerate(result["predictions"]):
        out.print(f"row {i}: {value}", markup=False)  # a label may hold "[...]"


@service_command()
def predict(
    call: ApiCall,
    model: Annotated[str, typer.Argument(help="the model hash")],
    rows: Annotated[Path, typer.Option(exists=True, help="JSON file: a list of row objects")],
) -> None:
    """Predict with a registered model; every prediction comes with a signed receipt."""
    data = read_json(rows)
    body = data if isinstance(data, dict) else {"rows": data}
    with call.connect() as api:
        result = check(api.post(f"/v1/models/{model}/predict", json=body))
    call.emit(result, _show_predictions)


def _show_graph(graph: dict[str, Any]) -> None:
    for node in graph["nodes"]:
        flag = " [red]TAINTED[/red]" if node.get("tainted") else ""
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
