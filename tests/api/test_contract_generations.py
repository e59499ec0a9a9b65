"""Issue 25's acceptance, each test on the embedded chain and on anvil: a ledger made by the
service of contract 1.1.0 (deployed first with that release's artifact), and one made by the code
of contract 1.0.0 itself (committed fixtures), is refused at start with the command that upgrades
it; ``provenance upgrade-contract`` deploys 1.2.0 as its successor; then the upgraded service
derives from a generation-1 parent, trains on it, issues receipts in both generations, revokes
a generation-1 record through generation 2, and every old and new receipt verifies, taint
crosses generations, fsck is clean and an index rebuilt from the chain equals the live one."""

from __future__ import annotations

import json
import sqlite3
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from api.devserver import ServiceProcess
from api.settings import Settings
from ledger.chain import client as client_module
from ledger.chain import deployment as deployment_module
from ledger.chain.contract_artifact import load_artifact
from ledger.chain.deployment import Deployment
from ledger.chain.devnode import AnvilNode, anvil_binary
from ledger.chain.keys import create_keystore
from tests._servers import free_port
from tests.api.conftest import authorized_client, train, upload

pytestmark = pytest.mark.usefixtures("isolated_cwd")

FIXTURES = Path(__file__).parents[1] / "fixtures" / "contracts"
LEDGERS = Path(__file__).parents[1] / "fixtures" / "ledgers"
RAW_CSV = "x1,x2,y\n100,200,5000\n200,300,6000\n300,400,7000\n300,400,7000\n250,,6500\n"
STEPS = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]
SERVICE_ENV = {
    "PROVENANCE_ANCHOR_INTERVAL": "3600",
    "PROVENANCE_ANCHOR_BATCH_SIZE": "10000",
    # /rpc's public-node budgets, loosened: a loaded 2-core machine must not fail a read
    "PROVENANCE_RPC_EVM_TIMEOUT": "20",
    "PROVENANCE_RPC_REQUEST_TIMEOUT": "60",
}


def predict_and_anchor(client: Any, model_hash: str) -> dict[str, Any]:
    rows = {"rows": [{"x1": 150, "x2": 250}, {"x1": 10, "x2": 20}]}
    response = client.post(f"/v1/models/{model_hash}/predict", json=rows)
    assert response.status_code == 200, response.text
    receipt_id = response.json()["receipts"][0]["receipt_id"]
    assert client.post("/v1/anchor").status_code == 200
    return client.get(f"/v1/receipts/{receipt_id}").json()


def verify(client: Any, receipt: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/verify/receipt", json=receipt)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def ledger_settings(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The service's settings on the embedded chain, or on an anvil node of its own (through
    the environment, which the CLI and the service process read too)."""
    env = dict(SERVICE_ENV)
    if request.param == "anvil":
        if anvil_binary() is None:
            pytest.skip("anvil is not installed: run `npm ci --prefix contracts`")
        node = AnvilNode(tmp_path / "anvil")
        request.addfinalizer(node.stop)
        password = "correct horse battery staple"
        keystore = tmp_path / "key.json"
        node.set_balance(create_keystore(keystore, password).address, 10**21)
        env |= {
            "PROVENANCE_CHAIN": "rpc",
            "PROVENANCE_RPC_URL": node.url,
            "PROVENANCE_KEYSTORE": str(keystore),
            "PROVENANCE_KEYSTORE_PASSWORD": password,
        }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def old_ledger(ledger_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A data directory made by the service of contract 1.1.0: a raw dataset, a cleaned one,
    a model trained on it and an anchored receipt, all in generation 1 (on a node, deployed
    first with that version's `provenance deploy`)."""
    settings = ledger_settings
    released = load_artifact(FIXTURES / "ProvenanceLedger-1.1.0.json")
    with monkeypatch.context() as patch:
        patch.setattr(client_module, "load_artifact", lambda: released)
        patch.setattr(deployment_module, "load_artifact", lambda: released)
        if settings.chain == "rpc":
            deployed = CliRunner().invoke(
                cli,
                ["deploy", "--rpc-url", str(settings.rpc_url),
                 "--keystore", str(settings.keystore), "--data-dir", str(settings.data_dir)],
            )  # fmt: skip
            assert deployed.exit_code == 0, deployed.output
        with authorized_client(settings) as client:
            raw = upload(client, RAW_CSV).json()["content_hash"]
            derived = client.post(f"/v1/datasets/{raw}/derive", json={"steps": STEPS})
            clean = derived.json()["content_hash"]
            model = train(client, clean).json()["model_hash"]
            receipt = predict_and_anchor(client, model)
            assert verify(client, receipt)["verdict"] == "valid"
    return {"raw": raw, "clean": clean, "model": model, "receipt": receipt}


def test_an_old_ledger_is_upgraded_and_keeps_working(ledger_settings, old_ledger, tmp_path):
    settings = ledger_settings
    record = settings.data_dir / "deployment.json"
    first = Deployment.load(record)
    # 1. The service refuses the 1.1.0 contract, saying what to run.
    with (
        pytest.raises(Exception, match=r"provenance upgrade-contract") as refused,
        TestClient(create_app(settings)),
    ):
        pass
    assert "1.1.0" in str(refused.value)
    # 2. One command upgrades it: generation 2 names generation 1.
    result = CliRunner().invoke(cli, ["upgrade-contract", "--data-dir", str(settings.data_dir)])
    assert result.exit_code == 0, result.output
    upgraded = Deployment.load(record)
    assert [g.version for g in upgraded.generations] == ["1.1.0", "1.2.0"]
    assert upgraded.generations[0].address == first.address
    assert upgraded.generations[0].last_block == upgraded.generations[1].block_number - 1
    newest = upgraded.address
    assert newest == upgraded.generations[1].address != first.address
    again = CliRunner().invoke(cli, ["upgrade-contract", "--data-dir", str(settings.data_dir)])
    assert again.exit_code == 1 and "nothing to upgrade" in again.output

    with ServiceProcess(settings.data_dir) as server:
        api = httpx.Client(base_url=server.url, headers=server.headers, timeout=120)
        chain = api.get("/v1/chain").json()
        assert chain["contract_address"] == newest
        assert [g["address"] for g in chain["generations"]] == [first.address, newest]
        assert chain["generations"][0]["last_block"] == chain["generations"][1]["first_block"] - 1
        # 3. Old records are listed beside new ones, and new work builds on them.
        assert api.get(f"/v1/datasets/{old_ledger['clean']}").status_code == 200
        derived = api.post(
            f"/v1/datasets/{old_ledger['raw']}/derive", json={"steps": [{"step": "drop_missing"}]}
        )
        assert derived.status_code in (200, 201), derived.text
        newer = derived.json()["content_hash"]
        model = train(api, newer)
        assert model.status_code == 201, model.text
        new_model = model.json()["model_hash"]
        receipts = {
            "generation 1": old_ledger["receipt"],
            "generation 2": predict_and_anchor(api, new_model),
            "generation 1's model, anchored in 2": predict_and_anchor(api, old_ledger["model"]),
        }
        # 4. Every receipt verifies, through the API, the CLI against the node and the browser:
        #    the old one under generation 1's domain, which generation 2 reaches.
        for name, receipt in receipts.items():
            assert verify(api, receipt)["verdict"] == "valid", name
            assert cli_verdict(tmp_path, f"{server.url}/rpc", receipt, newest) == "valid", name
            document = bundle(api, receipt)
            assert document["ledger"]["contract"] == newest
            assert document["eip712_domain"]["verifyingContract"] == (
                first.address if name == "generation 1" else newest
            )
            assert cli_verdict(tmp_path, f"{server.url}/rpc", document) == "valid", name
        assert browser_verdicts(server.url, receipts.values(), newest) == ["valid"] * 3
        audit_file = tmp_path / "receipts.json"
        audit_file.write_text(json.dumps(list(receipts.values())))
        audited = CliRunner().invoke(
            cli,
            ["audit", str(audit_file), "--rpc-url", f"{server.url}/rpc", "--contract", newest,
             "--json"],
        )  # fmt: skip
        assert audited.exit_code == 0, audited.output
        #    and a generation-1 model's attestations, made after the upgrade
        attestations = tmp_path / "model.intoto.jsonl"
        key = server.headers["Authorization"].split()[1]
        attested = CliRunner().invoke(
            cli,
            ["attest", old_ledger["model"], "-o", str(attestations), "--url", server.url,
             "--api-key", key],
        )  # fmt: skip
        assert attested.exit_code == 0, attested.output
        checked = CliRunner().invoke(
            cli,
            ["verify-attestation", str(attestations), "--rpc-url", f"{server.url}/rpc",
             "--contract", newest, "--json"],
        )  # fmt: skip
        assert checked.exit_code == 0, checked.output
        # 5. Revoking a generation-1 record through generation 2 taints both generations.
        raw = old_ledger["raw"]
        revoked = api.post(f"/v1/records/{raw}/revoke", json={"reason": "no consent"})
        assert revoked.status_code == 200, revoked.text
        assert api.get(f"/v1/models/{old_ledger['model']}").json()["tainted"] is True
        assert api.get(f"/v1/models/{new_model}").json()["tainted"] is True
        for name, receipt in receipts.items():
            assert verify(api, receipt)["verdict"] == "invalid", name
            assert cli_verdict(tmp_path, f"{server.url}/rpc", receipt, newest) == "invalid", name
        lineage = api.get(f"/v1/lineage/{new_model}", params={"direction": "up"}).json()
        assert {n["id"] for n in lineage["nodes"] if n["revoked"]} == {f"dataset:{raw}"}
        # 6. fsck is clean.
        fsck = api.get("/v1/admin/fsck").json()
        assert fsck == {"ok": True, "findings": []}, fsck
    live = _index_rows(settings.data_dir)
    # 7. An index rebuilt from the chain equals the live one.
    rebuilt = CliRunner().invoke(cli, ["index", "rebuild", "--data-dir", str(settings.data_dir)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert _index_rows(settings.data_dir) == live


def bundle(api: httpx.Client, receipt: dict[str, Any]) -> dict[str, Any]:
    """The receipt's evidence bundle from the upgraded service: its ``ledger`` names the newest
    generation, its EIP-712 domain the generation that signed the receipt."""
    response = api.get(f"/v1/receipts/{receipt['receipt_id']}/bundle")
    assert response.status_code == 200, response.text
    return response.json()


def cli_verdict(
    tmp_path: Path, rpc_url: str, document: dict[str, Any], contract: str | None = None
) -> str:
    """``provenance verify`` straight against a node (the service's /rpc, or anvil itself)."""
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(document))
    args = ["verify", str(path), "--rpc-url", rpc_url, "--json"]
    if contract:
        args += ["--contract", contract]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)["verdict"]


def browser_verdicts(url: str, documents: Any, contract: str) -> list[str]:
    """The console's verifier, in Chromium, against the service's /rpc (skipped without one)."""
    from tests.console._browser import chromium_path, launch

    if chromium_path() is None:
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    verdicts = []
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(base_url=url).new_page()
        for document in documents:
            page.goto("/verify")
            page.fill("#document", json.dumps(document))
            page.fill("#contract", contract)
            page.uncheck("#ask-service")
            page.click("#verifier button[type=submit]")
            page.wait_for_selector("#verifier[data-state=done]", timeout=30_000)
            verdicts.append(page.locator("#browser-report").get_attribute("data-verdict"))
        browser.close()
    return verdicts


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def ledger_1_0_0(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Settings, dict[str, Any]]:
    """A ledger built by the code of contract 1.0.0 itself (commit 3c1810d), its settings and
    the answers of that code's ``demo`` (a raw dataset, a cleaned one, a model, an anchored
    receipt), in a fresh copy of a committed fixture.

    embedded: ``tests/fixtures/ledgers/contract-1.0.0.tar.gz``, a data directory made by
    ``git archive 3c1810d``, then ``python -m api demo --data-dir data --json > demo.json`` run
    from it: its embedded chain, index, receipt book, keys and artifacts as that release wrote
    them.

    anvil: ``tests/fixtures/ledgers/contract-1.0.0-anvil.tar.gz``, made by
    ``make-contract-1.0.0-anvil.sh`` beside it: the same code, deployed with its own
    ``provenance deploy`` on an anvil run with ``--state`` (dumped on exit, historical states
    kept), then its ``demo`` with ``PROVENANCE_CHAIN=rpc``. The node is started here from that
    dump (``--state``), so the records, their events and their blocks are the ones the 1.0.0
    code wrote, not a replay of them by today's code; the data directory and keystore are that
    code's too.

    Both index files are of schema version 2: the upgraded service migrates them and backfills
    each row's generation, so the test's rebuilt index equal to the live one checks that too.
    """
    name = "contract-1.0.0.tar.gz" if request.param == "embedded" else "contract-1.0.0-anvil.tar.gz"
    with tarfile.open(LEDGERS / name) as archive:
        archive.extractall(tmp_path, filter="data")
    if request.param == "anvil":
        if anvil_binary() is None:
            pytest.skip("anvil is not installed: run `npm ci --prefix contracts`")
        node = AnvilNode(tmp_path / "anvil", state=tmp_path / "anvil-state.json")
        request.addfinalizer(node.stop)
        for variable, value in {
            "PROVENANCE_CHAIN": "rpc",
            "PROVENANCE_RPC_URL": node.url,
            "PROVENANCE_KEYSTORE": str(tmp_path / "key.json"),
            "PROVENANCE_KEYSTORE_PASSWORD": "correct horse battery staple",  # the script's
        }.items():
            monkeypatch.setenv(variable, value)
    demo = json.loads((tmp_path / "demo.json").read_text())
    settings = Settings(data_dir=tmp_path / "data", anchor_interval=3600, anchor_batch_size=10_000)
    return settings, demo


def test_a_ledger_made_by_the_1_0_0_service_is_upgraded_and_used(ledger_1_0_0, tmp_path):
    """The ledger of :func:`ledger_1_0_0` (embedded, or on anvil), opened by this release, is
    refused with the command, upgraded, then used as in the 1.1.0 test above, in process, with
    its receipts also checked by the CLI straight against the node (the app's /rpc on a port:
    ``verify`` and ``audit``) and by the browser's verifier against the same node, before and
    after a revocation through generation 2."""
    settings, demo = ledger_1_0_0
    index = sqlite3.connect(settings.data_dir / "index.sqlite3")
    assert index.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)
    index.close()

    def nodes(url: str) -> list[str]:
        """The nodes the CLI checks against: the app's /rpc, and anvil itself when it is one."""
        return [f"{url}/rpc", *([settings.rpc_url] if settings.chain == "rpc" else [])]

    with (
        pytest.raises(Exception, match=r"released ProvenanceLedger 1\.0\.0") as refused,
        TestClient(create_app(settings)),
    ):
        pass
    assert "provenance upgrade-contract" in str(refused.value)
    result = CliRunner().invoke(cli, ["upgrade-contract", "--data-dir", str(settings.data_dir)])
    assert result.exit_code == 0, result.output
    upgraded = Deployment.load(settings.data_dir / "deployment.json")
    assert [g.version for g in upgraded.generations] == ["1.0.0", "1.2.0"]
    raw, old_model = demo["raw"]["content_hash"], demo["model"]["model_hash"]
    with authorized_client(settings) as client:
        assert verify(client, demo["receipt"])["verdict"] == "valid"
        derived = client.post(
            f"/v1/datasets/{raw}/derive", json={"steps": [{"step": "drop_missing"}]}
        )
        assert derived.status_code in (200, 201), derived.text
        model = train(client, derived.json()["content_hash"])
        assert model.status_code == 201, model.text
        new_model = model.json()["model_hash"]
        receipts = [demo["receipt"], predict_and_anchor(client, new_model)]
        receipts.append(predict_and_anchor(client, old_model))
        assert [verify(client, r)["verdict"] for r in receipts] == ["valid"] * 3
        newest = Deployment.load(settings.data_dir / "deployment.json").address
        with served(client.app) as url:
            # the 1.0.0 receipt, signed under generation 1's domain, through generation 2
            for node in nodes(url):
                assert cli_verdict(tmp_path, node, demo["receipt"], newest) == "valid", node
                assert audit_verdicts(tmp_path, node, receipts, newest) == (0, ["valid"] * 3)
            assert browser_verdicts(url, receipts, newest) == ["valid"] * 3
            revoked = client.post(f"/v1/records/{raw}/revoke", json={"reason": "no consent"})
            assert revoked.status_code == 200, revoked.text
            assert client.get(f"/v1/models/{old_model}").json()["tainted"] is True
            assert client.get(f"/v1/models/{new_model}").json()["tainted"] is True
            assert [verify(client, r)["verdict"] for r in receipts] == ["invalid"] * 3
            for node in nodes(url):
                assert cli_verdict(tmp_path, node, demo["receipt"], newest) == "invalid", node
                assert audit_verdicts(tmp_path, node, receipts, newest) == (1, ["invalid"] * 3)
            assert browser_verdicts(url, receipts, newest) == ["invalid"] * 3
        assert client.get("/v1/admin/fsck").json() == {"ok": True, "findings": []}
    live = _index_rows(settings.data_dir)
    rebuilt = CliRunner().invoke(cli, ["index", "rebuild", "--data-dir", str(settings.data_dir)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert _index_rows(settings.data_dir) == live


@contextmanager
def served(app: Any) -> Iterator[str]:
    """An app its TestClient started, served on a real port too (its lifespan is the
    TestClient's), so the CLI can reach its /rpc as a node: no second process to start."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def audit_verdicts(
    tmp_path: Path, rpc_url: str, receipts: list[dict[str, Any]], contract: str
) -> tuple[int, list[str]]:
    """``provenance audit`` of ``receipts`` straight against a node: exit status, verdicts."""
    path = tmp_path / "receipts.json"
    path.write_text(json.dumps(receipts))
    args = ["audit", str(path), "--rpc-url", rpc_url, "--contract", contract, "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, [r["verdict"] for r in json.loads(result.stdout)["reports"]]


def _index_rows(data_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the index (but its sync bookkeeping)."""
    with sqlite3.connect(data_dir / "index.sqlite3") as conn:
        tables = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if name not in ("meta", "blocks")
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
