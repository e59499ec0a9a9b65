"""The ``provenance`` command: serve the API, run the demo, and drive every flow from a shell.

Commands that act on the ledger talk HTTP: to a running service given by ``--url``
(``PROVENANCE_URL``), or, without one, to the service opened in process on ``--data-dir``.
One code path, so the CLI behaves exactly like the API.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

app = typer.Typer(
    name="provenance",
    help="Provenance Ledger: verifiable lineage for datasets, models and predictions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="The SQLite index of the contract's events.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
keystore_app = typer.Typer(help="Encrypted signing keys for RPC nodes.", no_args_is_help=True)
dataset_app = typer.Typer(help="Register, clean and inspect datasets.", no_args_is_help=True)
model_app = typer.Typer(help="Train and inspect models.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
app.add_typer(model_app, name="model")
app.add_typer(index_app, name="index")
app.add_typer(keystore_app, name="keystore")
app.add_typer(keys_app, name="keys")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, whole, for grep and logs

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="PROVENANCE_URL", help="a running service; default: in process"),
]
DataDirOpt = Annotated[
    Path,
    typer.Option("--data-dir", envvar="PROVENANCE_DATA_DIR", help="the service's data directory"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="PROVENANCE_API_KEY", help="default: <data dir>/admin.key if present"
    ),
]
DEFAULT_DATA_DIR = Path(".provenance")


class CommandFailed(Exception):
    """An API call answered with a problem; its detail is what the user sees."""


def _auth_headers(api_key: str | None, data_dir: Path) -> dict[str, str]:
    key_file = data_dir / "admin.key"
    if api_key is None and key_file.exists():
        api_key = key_file.read_text().strip()
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


@contextmanager
def _connect(url: str | None, data_dir: Path, api_key: str | None = None) -> Iterator[httpx.Client]:
    """An HTTP client for a running service (``url``) or for one opened in process."""
    if url:
        headers = _auth_headers(api_key, data_dir)
        with httpx.Client(base_url=url.rstrip("/"), timeout=600, headers=headers) as client:
            yield client
        return
    import warnings

    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    settings = Settings(data_dir=data_dir)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(_auth_headers(api_key, data_dir))  # admin.key exists once started
        yield client


def _check(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        problem = response.json()
        detail = f"{problem.get('detail')} [{problem.get('type', '').rsplit(':', 1)[-1]}]"
    except ValueError:
        detail = response.text[:500]
    raise CommandFailed(f"HTTP {response.status_code}: {detail}")


def _emit(data: Any, as_json: bool, human: Any) -> None:
    if as_json:
        out.print_json(json.dumps(data))
    else:
        human(data)


def _fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line (its text is never read as markup) and exit with ``code``."""
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def _run(action: Any) -> None:
    try:
        action()
    except CommandFailed as exc:
        _fail(str(exc))
    except httpx.TransportError as exc:
        _fail(f"cannot reach the service: {exc}", 2)


def _show_fields(fields: list[tuple[str, Any]]) -> None:
    """One ``key  value`` line per field, never wrapped or cut: hashes are meant to be copied."""
    width = max(len(key) for key, _ in fields) + 2
    for key, value in fields:
        out.print(f"{key:<{width}}{value}", markup=False, highlight=False)


def _show_dataset(d: dict[str, Any]) -> None:
    keys = (
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
    columns = ", ".join(f"{c['name']}:{c['type']}" for c in d["columns"])
    _show_fields([*((key, d.get(key)) for key in keys), ("columns", columns)])


def _show_model(m: dict[str, Any]) -> None:
    keys = (
        "model_hash",
        "algorithm",
        "metadata_hash",
        "datasets",
        "tx_hash",
        "block_number",
        "revoked",
    )
    metrics = ", ".join(f"{k}={v}" for k, v in m["metadata"].get("metrics", {}).items())
    _show_fields([*((key, m.get(key)) for key in keys), ("metrics", metrics)])


def _read_json(path: Path) -> Any:
    """A JSON file given on the command line; a bad one is a user error, not a crash."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CommandFailed(f"{path} is not a readable JSON file: {exc}") from None


class _ProgressReader:
    """A file wrapper that advances a progress bar as httpx reads the upload."""

    def __init__(self, handle: Any, progress: Progress, task: Any) -> None:
        self._handle, self._progress, self._task = handle, progress, task

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._progress.advance(self._task, len(chunk))
        return chunk


# -- serve and demo ---------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Run the HTTP service (embedded chain by default: no configuration needed)."""
    import uvicorn

    from api.app import create_app
    from api.settings import Settings

    os.environ.setdefault("PROVENANCE_DATA_DIR", str(data_dir))
    settings = Settings(data_dir=data_dir)
    err.print(f"Provenance Ledger on http://{host}:{port} (docs at /docs), data in {data_dir}")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


DEMO_CSV = (
    "x1,x2,y\n"
    "100,200,5000\n"
    "200,300,6000\n"
    "300,400,7000\n"
    "300,400,7000\n"  # a duplicate the cleaning step removes
    "250,,6500\n"  # a missing value the cleaning step removes
)


@app.command()
def demo(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="default: a fresh temporary directory")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole flow on the worked sales example and say what happened at each step."""
    work = data_dir or Path(tempfile.mkdtemp(prefix="provenance-demo-"))

    def run() -> None:
        report: dict[str, Any] = {"data_dir": str(work)}
        say = (lambda *a: None) if as_json else out.print
        with _connect(None, work) as api:
            say(f"[bold]1. Collect[/bold]: sales data with a duplicate and a gap, in {work}")
            raw = _check(
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
            clean = _check(
                api.post(f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": steps})
            )
            say(
                f"[bold]2. Clean[/bold]: drop_duplicates + drop_missing -> {clean['content_hash']}"
                f" ({clean['row_count']} rows), parent {clean['parents'][0][:10]}…"
            )
            model = _check(
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
            prediction = _check(
                api.post(
                    f"/v1/models/{model['model_hash']}/predict",
                    json={"rows": [{"x1": 150, "x2": 250}]},
                )
            )
            say(f"[bold]4. Predict[/bold]: x1=150, x2=250 -> y = {prediction['predictions'][0]}")
            graph = _check(api.get(f"/v1/lineage/{model['model_hash']}?direction=up"))
            say(
                f"[bold]5. Lineage[/bold] of the model: {len(graph['nodes'])} nodes, "
                f"{len(graph['edges'])} edges"
            )
            for edge in graph["edges"]:
                say(f"   {edge['source'][:24]}… --{edge['relation']}--> {edge['target'][:24]}…")
            receipt_id = prediction["receipts"][0]["receipt_id"]
            batch = _check(api.post("/v1/anchor"))["batches"][0]
            receipt = _check(api.get(f"/v1/receipts/{receipt_id}"))
            verdict = _check(api.post("/v1/verify/receipt", json={"receipt": receipt}))
            passed = sum(1 for c in verdict["checks"] if c["ok"])
            say(
                f"[bold]6. Verify[/bold]: receipt {receipt_id[:18]}… anchored in batch "
                f"{batch['batch_id'][:18]}… (block {batch['block_number']}); verdict "
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

    _run(run)


# -- datasets -------------------------------------------------------------------------------


@dataset_app.command("register")
def dataset_register(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    name: Annotated[str | None, typer.Option(help="a human name")] = None,
    description: Annotated[str | None, typer.Option(help="what the data is")] = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Upload and register a CSV file; prints its hashes and chain coordinates."""

    def run() -> None:
        form = {k: v for k, v in (("name", name), ("description", description)) if v}
        with _connect(url, data_dir, api_key) as api, file.open("rb") as handle:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=err,
                transient=True,
                disable=as_json,
            ) as progress:
                task = progress.add_task(f"uploading {file.name}", total=file.stat().st_size)
                reader = _ProgressReader(handle, progress, task)
                response = api.post("/v1/datasets", files={"file": (file.name, reader)}, data=form)
            result = _check(response)
        if not as_json and response.status_code == 200:
            out.print("[yellow]already registered[/yellow]")
        _emit(result, as_json, _show_dataset)

    _run(run)


@dataset_app.command("derive")
def dataset_derive(
    parent: Annotated[str, typer.Argument(help="the parent dataset's content hash")],
    steps: Annotated[Path, typer.Option(exists=True, help='JSON file: {"steps": [...]}')],
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Clean a registered dataset with a transform spec and register the result."""

    def run() -> None:
        spec = _read_json(steps)
        body = spec if isinstance(spec, dict) else {"steps": spec}
        with _connect(url, data_dir, api_key) as api:
            result = _check(api.post(f"/v1/datasets/{parent}/derive", json=body))
        _emit(result, as_json, _show_dataset)

    _run(run)


@dataset_app.command("show")
def dataset_show(
    content_hash: str,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Show a registered dataset."""

    def run() -> None:
        with _connect(url, data_dir, api_key) as api:
            _emit(_check(api.get(f"/v1/datasets/{content_hash}")), as_json, _show_dataset)

    _run(run)


# -- models ---------------------------------------------------------------------------------


@model_app.command("train")
def model_train(
    dataset: Annotated[str, typer.Option(help="training dataset content hash")],
    algorithm: Annotated[str, typer.Option(help="e.g. linear_regression, ridge")],
    target: Annotated[str, typer.Option(help="the column to predict")],
    feature: Annotated[list[str] | None, typer.Option(help="a feature column (repeat)")] = None,
    param: Annotated[list[str] | None, typer.Option(help="NAME=JSON (repeat)")] = None,
    test_size: Annotated[float, typer.Option(help="held-out fraction, 0 for none")] = 0.2,
    seed: Annotated[int, typer.Option(help="split and estimator seed")] = 0,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Train a model deterministically on a registered dataset and register it."""

    def run() -> None:
        params = {}
        for item in param or []:
            key, _, raw = item.partition("=")
            try:
                params[key] = json.loads(raw)
            except ValueError:
                params[key] = raw
        body = {
            "dataset": dataset,
            "algorithm": algorithm,
            "target": target,
            "features": feature or None,
            "params": params,
            "test_size": test_size,
            "seed": seed,
        }
        with _connect(url, data_dir, api_key) as api, err.status(f"training {algorithm}…"):
            result = _check(api.post("/v1/models", json=body))
        _emit(result, as_json, _show_model)

    _run(run)


@model_app.command("show")
def model_show(
    model_hash: str,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Show a registered model with its metrics."""

    def run() -> None:
        with _connect(url, data_dir, api_key) as api:
            _emit(_check(api.get(f"/v1/models/{model_hash}")), as_json, _show_model)

    _run(run)


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="the model hash")],
    rows: Annotated[Path, typer.Option(exists=True, help="JSON file: a list of row objects")],
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Predict with a registered model; every prediction comes with a signed receipt."""

    def run() -> None:
        data = _read_json(rows)
        body = data if isinstance(data, dict) else {"rows": data}
        with _connect(url, data_dir, api_key) as api:
            result = _check(api.post(f"/v1/models/{model}/predict", json=body))

        def human(r: dict[str, Any]) -> None:
            for i, value in enumerate(r["predictions"]):
                out.print(f"row {i}: {value}", markup=False)  # a label may hold "[...]"

        _emit(result, as_json, human)

    _run(run)


@app.command()
def lineage(
    record: Annotated[str, typer.Argument(help="a dataset, model or batch hash")],
    direction: Annotated[str, typer.Option(help="up, down or both")] = "both",
    prov: Annotated[bool, typer.Option("--prov", help="W3C PROV-JSON")] = False,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Show where a record came from and what was built on it."""

    def run() -> None:
        query = f"direction={direction}" + ("&format=prov" if prov else "")
        with _connect(url, data_dir, api_key) as api:
            graph = _check(api.get(f"/v1/lineage/{record}?{query}"))

        def human(g: dict[str, Any]) -> None:
            for node in g["nodes"]:
                flag = " [red]TAINTED[/red]" if node.get("tainted") else ""
                out.print(f"{node['kind']:>9} {node['id']}{flag}")
            for edge in g["edges"]:
                out.print(f"  {edge['source']} --{edge['relation']}--> {edge['target']}")

        _emit(graph, as_json or prov, human)

    _run(run)


# -- verification ---------------------------------------------------------------------------

EXIT_INVALID, EXIT_UNREACHABLE, EXIT_PENDING = 1, 2, 3


def _show_report(report: dict[str, Any]) -> None:
    marks = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[yellow]·[/yellow]"}
    for check in report["checks"]:
        out.print(f" {marks[check['ok']]} {check['name']:<18} {check['detail']}")
    colour = {"valid": "green", "invalid": "red", "pending": "yellow"}[report["verdict"]]
    out.print(f"verdict: [bold {colour}]{report['verdict']}[/bold {colour}]")


@app.command()
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
    from ledger.backends.rpc import RpcBackend
    from ledger.client import LedgerClient
    from ledger.errors import ChainUnavailable
    from ledger.receipts import Receipt, ReceiptError
    from ledger.store import ArtifactStore
    from ledger.verify import Anchoring
    from ledger.verify import verify_receipt as verify_receipt_on_chain

    document = json.loads(receipt_file.read_text())
    receipt_doc = document.get("receipt", document)
    input_row = json.loads(input_file.read_text()) if input_file else document.get("input")
    address = contract or document.get("ledger", {}).get("contract")
    if not address:
        _fail("--contract is required for a bare receipt", EXIT_INVALID)
    try:
        receipt = Receipt.model_validate({k: receipt_doc.get(k) for k in Receipt.model_fields})
    except (ValueError, ReceiptError) as exc:
        _fail(f"{receipt_file} is not a receipt: {exc}", EXIT_INVALID)
    try:
        report = verify_receipt_on_chain(
            receipt,
            LedgerClient.reader(RpcBackend(rpc_url), address),
            anchoring=Anchoring.from_json(receipt_doc),
            store=ArtifactStore(artifacts) if artifacts else None,
            input_row=input_row,
        ).to_json()
    except ChainUnavailable as exc:
        _fail(str(exc), EXIT_UNREACHABLE)
    _emit(report, as_json, _show_report)
    if report["verdict"] != "valid":
        raise typer.Exit(EXIT_INVALID if report["verdict"] == "invalid" else EXIT_PENDING)


@app.command()
def bundle(
    receipt_id: Annotated[str, typer.Argument(help="the receipt id (0x...)")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="file to write")] = None,
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Write the evidence bundle of a receipt: receipt, proof, lineage, chain coordinates."""

    def run() -> None:
        with _connect(url, data_dir, api_key) as api:
            document = _check(api.get(f"/v1/receipts/{receipt_id}/bundle"))
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        if output:
            output.write_text(text)
            err.print(
                f"wrote {output} (verdict at bundling: {document['verification']['verdict']})"
            )
        else:
            out.print(text, end="", markup=False, highlight=False)

    _run(run)


# -- chain administration -------------------------------------------------------------------

PasswordEnv = "PROVENANCE_KEYSTORE_PASSWORD"
PasswordFileEnv = "PROVENANCE_KEYSTORE_PASSWORD_FILE"


@keystore_app.command("create")
def keystore_create(
    path: Annotated[Path, typer.Argument(help="where to write the keystore (mode 0600)")],
) -> None:
    """Create a new key in an encrypted JSON keystore; the password comes from
    $PROVENANCE_KEYSTORE_PASSWORD or the file named by $PROVENANCE_KEYSTORE_PASSWORD_FILE."""
    from ledger.keys import create_keystore, read_password

    if path.exists():
        _fail(f"{path} exists; refusing to overwrite a key")
    account = create_keystore(path, read_password(PasswordEnv, PasswordFileEnv))
    out.print(f"created {path} for address {account.address}")


@app.command()
def deploy(
    rpc_url: Annotated[str, typer.Option(help="the JSON-RPC node to deploy to")],
    keystore: Annotated[Path, typer.Option(exists=True, help="encrypted JSON keystore")],
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Deploy the committed contract artifact and write the deployment record that
    `serve` uses with PROVENANCE_CHAIN=rpc."""
    from ledger.backends.rpc import RpcBackend
    from ledger.deployment import Deployment, deploy_ledger
    from ledger.errors import LedgerError
    from ledger.keys import load_keystore, read_password

    record = data_dir / "deployment.json"
    try:
        account = load_keystore(keystore, read_password(PasswordEnv, PasswordFileEnv))
        existing = Deployment.load(record)
        if existing is not None:
            _fail(f"{record} already records {existing.address}")
        client = deploy_ledger(RpcBackend(rpc_url), account, record)
    except LedgerError as exc:
        _fail(str(exc))
    out.print(f"deployed ProvenanceLedger at {client.address} on chain {client.chain_id()}")
    out.print(f"wrote {record}")


@index_app.command("rebuild")
def index_rebuild(data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Drop the index and rebuild it from the contract's events (the chain is the truth).

    With the embedded chain, stop the service first: its chain has one writer at a time.
    """
    from api.service import open_backend
    from api.settings import Settings
    from ledger.deployment import connect_ledger
    from ledger.index import LedgerIndex

    settings = Settings(data_dir=data_dir)
    try:
        backend, account = open_backend(settings)
    except Exception as exc:
        _fail(f"cannot open the chain in {data_dir}: {exc}")
    try:
        client = connect_ledger(
            backend, account, data_dir / "deployment.json", deploy_if_missing=False
        )
        with LedgerIndex(data_dir / "index.sqlite3") as index:
            count = index.rebuild(client)
            out.print(f"rebuilt the index from {count} events up to block {index.last_block}")
    finally:
        backend.close()


# -- keys and integrity ---------------------------------------------------------------------


def _key_store(data_dir: Path) -> Any:
    from api.auth import KeyStore

    data_dir.mkdir(parents=True, exist_ok=True)
    return KeyStore(data_dir / "keys.sqlite3")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="auditor, registrar or admin")],
    name: Annotated[str, typer.Option(help="who or what the key is for")] = "",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Create an API key; it is printed once, as the last word of the output."""
    try:
        info, key = _key_store(data_dir).create(role, name)
    except ValueError as exc:
        _fail(str(exc))
    print(f"created {info.role} key {info.key_id}; it is not stored anywhere, keep it: {key}")


@keys_app.command("list")
def keys_list(data_dir: DataDirOpt = DEFAULT_DATA_DIR, as_json: JsonOpt = False) -> None:
    """List API keys (ids and roles; the secrets are never stored)."""
    keys = [
        {"key_id": k.key_id, "role": k.role, "name": k.name, "created_at": k.created_at,
         "revoked_at": k.revoked_at}
        for k in _key_store(data_dir).list()
    ]  # fmt: skip

    def human(rows: list[dict[str, Any]]) -> None:
        for k in rows:
            state = "revoked" if k["revoked_at"] else "active"
            out.print(f"{k['key_id']}  {k['role']:<9} {state:<7} {k['name']}")

    _emit(keys, as_json, human)


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Revoke an API key; it stops working at the service's next request."""
    if not _key_store(data_dir).revoke(key_id):
        _fail(f"no active key {key_id}")
    out.print(f"revoked {key_id}")


@app.command()
def fsck(
    url: UrlOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Re-hash every artifact and compare the index with the chain; exit 1 on any finding."""
    report: dict[str, Any] = {}

    def run() -> None:
        with _connect(url, data_dir, api_key) as api:
            report.update(_check(api.get("/v1/admin/fsck")))

        def human(r: dict[str, Any]) -> None:
            for f in r["findings"]:
                out.print(f"[red]{f['kind']}[/red] {f['subject']}: {f['detail']} "
                          f"(expected {f['expected']}, found {f['found']})")  # fmt: skip
            out.print("all artifacts and index rows match the chain" if r["ok"] else "")

        _emit(report, as_json, human)

    _run(run)
    if not report.get("ok"):
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
