"""The ``provenance`` command: the demo, and every flow command (register, derive, train,
predict, lineage, bundle, verify) for people and with ``--json``, run against a data directory in
process and against a running server with ``--url``; errors are one line and an exit status,
never a trace."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from click.testing import Result
from prov.model import ProvDocument
from typer.testing import CliRunner

from api.cli import app
from tests.api.test_cli_imports import NOT_FOR_VERIFY, imported, run_in_fresh_interpreter
from tests.api.test_server_e2e import serve

pytestmark = pytest.mark.usefixtures("isolated_cwd")

RAW_CSV = "x1,x2,y\n100,200,5000\n200,300,6000\n300,400,7000\n300,400,7000\n250,,6500\n"
STEPS = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]
# the environment must not point these commands at some other service
runner = CliRunner(
    env={"PROVENANCE_URL": None, "PROVENANCE_API_KEY": None, "PROVENANCE_DATA_DIR": None}
)


def fixed(record: dict[str, Any]) -> dict[str, Any]:
    """A record's view without its confirmations, which grow with every block."""
    return {k: v for k, v in record.items() if k != "confirmations"}


def cli(*args: str | Path, code: int = 0) -> Result:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (
        f"provenance {' '.join(map(str, args))} exited {result.exit_code}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


def cli_json(*args: str | Path) -> Any:
    return json.loads(cli(*args, "--json").stdout)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "raw": tmp_path / "sales.csv",
        "steps": tmp_path / "steps.json",
        "step_list": tmp_path / "step-list.json",
        "rows": tmp_path / "rows.json",
        "row_object": tmp_path / "row-object.json",
        "bad_csv": tmp_path / "bad.csv",
        "bad_json": tmp_path / "bad.json",
    }
    paths["raw"].write_text(RAW_CSV)
    paths["steps"].write_text(json.dumps({"steps": STEPS}))
    paths["step_list"].write_text(
        json.dumps([{"step": "filter_rows", "column": "x1", "op": ">", "value": 100}])
    )
    paths["rows"].write_text(json.dumps([{"x1": 150, "x2": 250}, {"x1": 250, "x2": 350}]))
    paths["row_object"].write_text(json.dumps({"rows": [{"x1": 400, "x2": 500}]}))
    paths["bad_csv"].write_text("a,b\n1,2\n3\n")
    paths["bad_json"].write_text("{steps: [")
    return paths


def run_flow(files: dict[str, Path], *connection: str | Path) -> dict[str, Any]:
    """register → derive → train → predict → lineage through the CLI, as a script would."""
    raw = cli_json("dataset", "register", files["raw"], "--name", "sales", *connection)
    assert raw["content_hash"] == "0x" + hashlib.sha256(RAW_CSV.encode()).hexdigest()
    assert raw["row_count"] == 5 and raw["name"] == "sales"

    clean = cli_json(
        "dataset", "derive", raw["content_hash"], "--steps", files["steps"], *connection
    )
    assert clean["parents"] == [raw["content_hash"]] and clean["row_count"] == 3
    filtered = cli_json(
        "dataset", "derive", raw["content_hash"], "--steps", files["step_list"], *connection
    )
    assert filtered["row_count"] == 4 and filtered["parents"] == [raw["content_hash"]]

    model = cli_json(
        "model",
        "train",
        "--dataset",
        clean["content_hash"],
        "--algorithm",
        "linear_regression",
        "--target",
        "y",
        "--feature",
        "x1",
        "--feature",
        "x2",
        "--param",
        "fit_intercept=true",
        "--test-size",
        "0",
        *connection,
    )
    assert model["datasets"] == [clean["content_hash"]]
    assert model["metadata"]["features"] == ["x1", "x2"]
    assert model["metadata"]["requested_params"] == {"fit_intercept": True}

    predicted = cli_json("predict", model["model_hash"], "--rows", files["rows"], *connection)
    assert predicted["predictions"] == [pytest.approx(5500.0), pytest.approx(6500.0)]
    assert len(predicted["receipts"]) == 2
    single = cli_json("predict", model["model_hash"], "--rows", files["row_object"], *connection)
    assert single["predictions"] == [pytest.approx(8000.0)]

    graph = cli_json("lineage", model["model_hash"], "--direction", "up", *connection)
    assert Counter(n["kind"] for n in graph["nodes"]) == {
        "dataset": 2,
        "transform": 1,
        "training": 1,
        "model": 1,
    }
    assert len(graph["edges"]) == 6

    prov = cli("lineage", model["model_hash"], "--direction", "up", "--prov", *connection).stdout
    document = ProvDocument.deserialize(content=prov, format="json")
    assert len(list(document.get_records())) == len(graph["nodes"]) + len(graph["edges"])

    # reads give back what the writes answered
    assert fixed(cli_json("dataset", "show", clean["content_hash"], *connection)) == fixed(clean)
    assert fixed(cli_json("model", "show", model["model_hash"], *connection)) == fixed(model)
    return {"raw": raw, "clean": clean, "model": model, "graph": graph}


def check_human_output(
    created: dict[str, Any], files: dict[str, Path], *connection: str | Path
) -> None:
    """The same commands without ``--json`` print every hash whole, so it can be copied."""
    raw, clean, model = created["raw"], created["clean"], created["model"]
    again = cli("dataset", "register", files["raw"], *connection).stdout
    assert "already registered" in again
    assert raw["content_hash"] in again and raw["tx_hash"] in again
    assert "x1:integer, x2:integer, y:integer" in again

    shown = cli("model", "show", model["model_hash"], *connection).stdout
    for value in (model["model_hash"], model["metadata_hash"], clean["content_hash"]):
        assert value in shown
    assert "r2=" in shown

    predicted = cli("predict", model["model_hash"], "--rows", files["rows"], *connection).stdout
    assert [line.split("  receipt 0x")[0] for line in predicted.splitlines()] == [
        "row 0: 5500.0",
        "row 1: 6500.0",
    ]

    lines = cli("lineage", raw["content_hash"], "--direction", "down", *connection).stdout
    assert f"dataset dataset:{raw['content_hash']}" in lines
    assert (
        f"model:{model['model_hash']} --wasDerivedFrom--> dataset:{clean['content_hash']}" in lines
    )


# -- in process, on a data directory ------------------------------------------------------------


def test_every_flow_command_in_process(tmp_path: Path, files: dict[str, Path]) -> None:
    connection = ("--data-dir", tmp_path / "data")
    created = run_flow(files, *connection)
    check_human_output(created, files, *connection)


def error_line(result: Result) -> str:
    """The one ``error:`` line a failed command prints on stderr (nothing on stdout)."""
    assert not result.stdout
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


def test_errors_are_one_line_and_an_exit_status(tmp_path: Path, files: dict[str, Path]) -> None:
    data = ("--data-dir", tmp_path / "data")
    unknown = "0x" + "00" * 32

    bad = error_line(cli("dataset", "register", files["bad_csv"], *data, code=1))
    assert bad.startswith("error: HTTP 422: line 3 has 1 field(s)")
    assert bad.endswith("[ragged-row]")  # the problem type, for scripts that grep

    missing = cli("dataset", "derive", unknown, "--steps", files["steps"], *data, code=1)
    assert error_line(missing) == (
        f"error: HTTP 404: no dataset is registered under {unknown} [unknown-dataset]"
    )

    raw = cli_json("dataset", "register", files["raw"], *data)
    broken = cli(
        "dataset", "derive", raw["content_hash"], "--steps", files["bad_json"], *data, code=4
    )
    assert "is not a readable JSON file" in error_line(broken)

    untrainable = cli(
        "model",
        "train",
        "--dataset",
        raw["content_hash"],
        "--algorithm",
        "magic",
        "--target",
        "y",
        *data,
        code=1,
    )
    assert error_line(untrainable).endswith("[unknown-algorithm]")

    no_model = cli("predict", unknown, "--rows", files["rows"], *data, code=1)
    assert error_line(no_model).endswith("[unknown-model]")
    bad_rows = cli("predict", unknown, "--rows", files["bad_json"], *data, code=4)
    assert "is not a readable JSON file" in error_line(bad_rows)

    assert error_line(cli("lineage", unknown, *data, code=1)).endswith("[unknown-record]")
    assert error_line(cli("lineage", "0x12", *data, code=1)).endswith("[invalid-request]")

    # a file that is not there is a usage error, caught before anything runs
    usage = cli("dataset", "register", tmp_path / "nowhere.csv", *data, code=2)
    assert usage.stderr.startswith("Usage: provenance dataset register") and not usage.stdout


def test_class_labels_are_printed_as_they_are(tmp_path: Path) -> None:
    data = ("--data-dir", tmp_path / "data")
    csv = tmp_path / "labels.csv"
    csv.write_text("x,label\n" + "".join(f"{i},{'[hi]' if i > 4 else '[lo]'}\n" for i in range(10)))
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"x": 0}, {"x": 9}]))
    dataset = cli_json("dataset", "register", csv, *data)["content_hash"]
    model = cli_json("model", "train", "--dataset", dataset, "--algorithm",
                     "random_forest_classifier", "--target", "label", "--test-size", "0",
                     *data)["model_hash"]  # fmt: skip
    lines = cli("predict", model, "--rows", rows, *data).stdout.splitlines()
    assert [line.split("  receipt 0x")[0] for line in lines] == ["row 0: [lo]", "row 1: [hi]"]


def test_an_unreachable_service_is_exit_2(tmp_path: Path, files: dict[str, Path]) -> None:
    result = cli("dataset", "register", files["raw"], "--url", "http://127.0.0.1:9", code=2)
    assert error_line(result).startswith("error: cannot reach the service")


# the commands that call the HTTP API, and whether they print JSON with --json
API_COMMANDS = {
    ("dataset", "register"): True,
    ("dataset", "derive"): True,
    ("dataset", "show"): True,
    ("model", "train"): True,
    ("model", "show"): True,
    ("predict",): True,
    ("lineage",): True,
    ("bundle",): False,
    ("fsck",): True,
}


def test_every_api_command_has_the_shared_options() -> None:
    root = typer.main.get_command(app)
    for path, has_json in API_COMMANDS.items():
        command = root
        for name in path:
            command = command.get_command(None, name)  # type: ignore[attr-defined]
        options = {opt: param for param in command.params for opt in param.opts}
        assert options["--url"].envvar == "PROVENANCE_URL", path
        assert options["--api-key"].envvar == "PROVENANCE_API_KEY", path
        assert options["--data-dir"].envvar == "PROVENANCE_DATA_DIR", path
        assert options["--data-dir"].default == Path(".provenance"), path
        assert ("--json" in options) is has_json, path
        # the command's own arguments and options come first, the shared options after them
        shared = ["url", "api_key", "data_dir", *(["as_json"] if has_json else [])]
        assert [param.name for param in command.params][-len(shared) :] == shared, path


def test_keys_and_keystore_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ("--data-dir", tmp_path / "data")
    assert cli_json("keys", "list", *data) == []
    wrong_role = error_line(cli("keys", "create", "--role", "wizard", *data, code=1))
    assert "wizard" in wrong_role
    assert error_line(cli("keys", "revoke", "nope", *data, code=1)) == "error: no active key nope"

    monkeypatch.delenv("PROVENANCE_KEYSTORE_PASSWORD", raising=False)
    monkeypatch.delenv("PROVENANCE_KEYSTORE_PASSWORD_FILE", raising=False)
    keystore = tmp_path / "key.json"
    no_password = error_line(cli("keystore", "create", keystore, code=1))
    assert no_password.startswith("error: set PROVENANCE_KEYSTORE_PASSWORD")
    assert not keystore.exists()
    monkeypatch.setenv("PROVENANCE_KEYSTORE_PASSWORD", "correct horse")
    created = cli("keystore", "create", keystore).stdout
    assert created.startswith(f"created {keystore} for address 0x")
    assert keystore.stat().st_mode & 0o777 == 0o600
    again = error_line(cli("keystore", "create", keystore, code=1))
    assert again == f"error: {keystore} exists; refusing to overwrite a key"


def test_index_rebuild_without_a_ledger_touches_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "empty"
    data_dir.mkdir()
    missing = error_line(cli("index", "rebuild", "--data-dir", data_dir, code=1))
    assert missing.startswith(f"error: no deployment record at {data_dir / 'deployment.json'}")
    assert list(data_dir.iterdir()) == []  # no chain was created in a mistyped directory


def test_demo_runs_and_prints_the_prediction(tmp_path: Path) -> None:
    result = cli("demo", "--data-dir", tmp_path / "demo")
    text = result.stdout
    for step in ("1. Collect", "2. Clean", "3. Train", "4. Predict", "5. Lineage"):
        assert step in text
    assert "y = 5500.0" in text
    assert "5 nodes, 6 edges" in text


def test_demo_as_json(tmp_path: Path) -> None:
    report = cli_json("demo", "--data-dir", tmp_path / "demo")
    assert report["prediction"]["predictions"] == [pytest.approx(5500.0)]
    assert report["raw"]["row_count"] == 5 and report["clean"]["row_count"] == 3
    assert report["clean"]["parents"] == [report["raw"]["content_hash"]]
    assert report["model"]["datasets"] == [report["clean"]["content_hash"]]
    assert len(report["lineage"]["nodes"]) == 5 and len(report["lineage"]["edges"]) == 6
    # what the demo registered is really in the data directory it named
    data = ("--data-dir", report["data_dir"])
    shown = cli_json("model", "show", report["model"]["model_hash"], *data)
    assert fixed(shown) == fixed(report["model"])


# -- against a running server -------------------------------------------------------------------


def test_every_flow_command_against_a_running_server(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    data_dir = tmp_path / "served"
    # receipts are anchored when check_bundles_and_verify says so
    with serve(data_dir, env={"PROVENANCE_ANCHOR_INTERVAL": "3600"}) as base_url:
        key_file = data_dir / "admin.key"
        key = ("--api-key", key_file.read_text().strip()) if key_file.exists() else ()
        connection = ("--url", base_url, *key)
        created = run_flow(files, *connection)
        check_human_output(created, files, *connection)

        # the server answered, not an in-process service on the default data directory
        assert not (tmp_path / ".provenance").exists()
        listing = cli_json("lineage", created["raw"]["content_hash"], "--url", base_url)
        assert {n["id"] for n in listing["nodes"]} >= {n["id"] for n in created["graph"]["nodes"]}

        unknown = "0x" + "ab" * 32
        missing = cli("model", "show", unknown, "--url", base_url, code=1)
        assert error_line(missing).endswith("[unknown-model]")
        if key:  # writes need the key; reads (above) do not
            refused = cli("dataset", "register", files["bad_csv"], "--url", base_url, code=1)
            assert error_line(refused).startswith("error: HTTP 401")

        check_bundles_and_verify(tmp_path, base_url, key, created["model"]["model_hash"], files)


def check_bundles_and_verify(
    tmp_path: Path, base_url: str, key: tuple[str, ...], model_hash: str, files: dict[str, Path]
) -> None:
    """A receipt's bundle, verified straight against the server's node, before and after it is
    anchored, tampered with, bare, and against a node that is not there."""
    connection = ("--url", base_url, *key)
    node = ("--rpc-url", f"{base_url}/rpc")
    predicted = cli_json("predict", model_hash, "--rows", files["row_object"], *connection)
    receipt_id = predicted["receipts"][0]["receipt_id"]

    pending = tmp_path / "pending.json"
    cli("bundle", receipt_id, "-o", pending, *connection)
    assert cli("verify", pending, *node, code=3).stdout.splitlines()[-1] == "verdict: pending"

    headers = {"Authorization": f"Bearer {key[1]}"} if key else {}
    httpx.post(f"{base_url}/v1/anchor", headers=headers, timeout=60).raise_for_status()
    path = tmp_path / "bundle.json"
    wrote = cli("bundle", receipt_id, "--output", path, *connection)
    assert wrote.stderr.strip() == f"wrote {path} (verdict at bundling: valid)"
    document = json.loads(path.read_text())
    assert path.read_text() == json.dumps(document, indent=2, sort_keys=True) + "\n"
    printed = cli("bundle", receipt_id, *connection).stdout
    assert json.loads(printed)["receipt"] == document["receipt"]

    shown = cli("verify", path, *node).stdout.splitlines()
    assert shown[-1] == "verdict: valid"
    assert any(line.startswith(" ✓ batch_anchored") for line in shown)
    report = cli_json("verify", path, *node)
    assert report["verdict"] == "valid"
    assert {"signature", "merkle_proof", "batch_anchored", "model_registered"} <= {
        c["name"] for c in report["checks"] if c["ok"]
    }

    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**document, "receipt": {**document["receipt"], "output": 1}}))
    invalid = json.loads(cli("verify", tampered, *node, "--json", code=1).stdout)
    assert [c["name"] for c in invalid["checks"] if c["ok"] is False] == ["output_hash"]

    bare = tmp_path / "receipt.json"
    bare.write_text(json.dumps(document["receipt"]))
    no_contract = error_line(cli("verify", bare, *node, code=4))
    assert no_contract == "error: --contract is required for a bare receipt"
    contract = ("--contract", document["ledger"]["contract"])
    assert cli_json("verify", bare, *node, *contract)["verdict"] == "valid"

    unreachable = cli("verify", path, "--rpc-url", "http://127.0.0.1:9", code=2)
    assert error_line(unreachable).startswith("error: --rpc-url http://127.0.0.1:9: ")
    assert "is not a readable JSON file" in error_line(
        cli("verify", files["bad_json"], *node, code=4)
    )
    assert error_line(cli("verify", files["rows"], *node, code=4)) == (
        f"error: {files['rows']} is not a receipt: it holds no JSON object"
    )

    # what an auditor runs imports no training or service code on its way to a live node
    fresh = run_in_fresh_interpreter(["verify", str(path), *node], tmp_path / "imports.json")
    assert fresh["exit"] == 0
    assert imported(fresh, NOT_FOR_VERIFY) == []
