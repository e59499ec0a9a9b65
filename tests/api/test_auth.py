"""Who may write: every write needs a registrar key, admin routes an admin key, and a refused
request changes nothing on chain, in the store or in the receipt book."""

from __future__ import annotations

import stat

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from tests.api.conftest import (
    SALES_CSV,
    admin_key,
    assert_problem,
    authorized_client,
    train,
    upload,
)

pytestmark = pytest.mark.usefixtures("isolated_cwd")


@pytest.fixture
def world(client):
    """A dataset, a model and a key of each role."""
    dataset = upload(client).json()
    model = train(client, dataset["content_hash"]).json()
    keys = {
        role: client.post("/v1/admin/keys", json={"role": role, "name": role}).json()["key"]
        for role in ("auditor", "registrar")
    }
    return {"dataset": dataset["content_hash"], "model": model["model_hash"], "keys": keys}


WRITES = {
    "register": ("POST", "/v1/datasets", lambda w: {"files": {"file": ("x.csv", "a,b\n1,2\n")}}),
    "derive": ("POST", "/v1/datasets/{dataset}/derive",
               lambda w: {"json": {"steps": [{"step": "drop_duplicates"}]}}),
    "train": ("POST", "/v1/models",
              lambda w: {"json": {"dataset": w["dataset"], "algorithm": "ridge", "target": "y"}}),
    "predict": ("POST", "/v1/models/{model}/predict",
                lambda w: {"json": {"rows": [{"x1": 1, "x2": 2}]}}),
    "revoke": ("POST", "/v1/records/{dataset}/revoke", lambda w: {"json": {"reason": "no"}}),
    "anchor": ("POST", "/v1/anchor", lambda w: {}),
}  # fmt: skip
ADMIN = {
    "registrars": ("POST", "/v1/admin/registrars",
                   lambda w: {"json": {"address": "0x" + "12" * 20, "action": "grant"}}),
    "create-key": ("POST", "/v1/admin/keys", lambda w: {"json": {"role": "admin"}}),
    "list-keys": ("GET", "/v1/admin/keys", lambda w: {}),
    "fsck": ("GET", "/v1/admin/fsck", lambda w: {}),
}  # fmt: skip


def snapshot(client, settings):
    """What a refused request must not change."""
    service = client.app.state.service
    return (
        service.core.client.latest_block(),
        sorted(service.core.store.digests()),
        service.core.receipts.counts(),
        len(service.core.client.events()),
        [k.key_id for k in client.app.state.keys.list()],
    )


def call(client, world, spec, key=None):
    method, path, body = spec
    headers = {"Authorization": f"Bearer {key}"} if key else {"Authorization": ""}
    return client.request(method, path.format(**world), headers=headers, **body(world))


@pytest.mark.parametrize("name", sorted(WRITES) + sorted(ADMIN))
def test_without_a_key_every_write_is_401_and_changes_nothing(client, settings, world, name):
    before = snapshot(client, settings)
    response = call(client, world, {**WRITES, **ADMIN}[name])
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert snapshot(client, settings) == before


@pytest.mark.parametrize("name", sorted(WRITES) + sorted(ADMIN))
def test_an_auditor_key_is_403_on_every_write_and_changes_nothing(client, settings, world, name):
    before = snapshot(client, settings)
    response = call(client, world, {**WRITES, **ADMIN}[name], world["keys"]["auditor"])
    assert_problem(response, 403, "forbidden")
    assert snapshot(client, settings) == before


@pytest.mark.parametrize("name", sorted(ADMIN))
def test_a_registrar_key_is_403_on_admin_routes(client, settings, world, name):
    before = snapshot(client, settings)
    assert_problem(call(client, world, ADMIN[name], world["keys"]["registrar"]), 403, "forbidden")
    assert snapshot(client, settings) == before


def test_a_registrar_key_writes(client, world):
    key = world["keys"]["registrar"]
    response = call(client, world, WRITES["predict"], key)
    assert response.status_code == 200, response.text
    assert call(client, world, WRITES["register"], key).status_code == 201


def test_an_unknown_key_is_401_even_where_reads_are_public(client, world):
    response = client.get("/v1/datasets", headers={"Authorization": "Bearer pl_nope_nope"})
    assert_problem(response, 401, "unauthorized")
    assert client.get("/v1/datasets", headers={"Authorization": ""}).status_code == 200


def test_reads_need_a_key_when_public_read_is_off(tmp_path):
    from api.settings import Settings

    settings = Settings(data_dir=tmp_path / "private", public_read=False)
    with authorized_client(settings) as client:
        auditor = client.post("/v1/admin/keys", json={"role": "auditor"}).json()["key"]
        for path in ("/v1/datasets", "/v1/chain"):
            assert_problem(client.get(path, headers={"Authorization": ""}), 401, "unauthorized")
            ok = client.get(path, headers={"Authorization": f"Bearer {auditor}"})
            assert ok.status_code == 200
        verify = client.post(
            "/v1/verify/receipt", json={"receipt": {}}, headers={"Authorization": ""}
        )
        assert_problem(verify, 401, "unauthorized")
        assert client.get("/healthz", headers={"Authorization": ""}).status_code == 200


def test_a_key_revoked_through_the_cli_stops_working_at_once(client, settings, world):
    key = world["keys"]["registrar"]
    assert call(client, world, WRITES["predict"], key).status_code == 200
    key_id = key.split("_")[1]
    result = CliRunner().invoke(
        cli, ["keys", "revoke", key_id, "--data-dir", str(settings.data_dir)]
    )
    assert result.exit_code == 0, result.output
    assert_problem(call(client, world, WRITES["predict"], key), 401, "unauthorized")


def test_cli_created_key_is_the_last_word_and_works(client, settings, world):
    result = CliRunner().invoke(
        cli, ["keys", "create", "--role", "registrar", "--data-dir", str(settings.data_dir)]
    )
    assert result.exit_code == 0, result.output
    key = result.output.split()[-1]
    assert call(client, world, WRITES["predict"], key).status_code == 200
    listed = CliRunner().invoke(
        cli, ["keys", "list", "--json", "--data-dir", str(settings.data_dir)]
    )
    assert key not in listed.output  # only hashes are stored
    assert key.split("_")[1] in listed.output


def test_admin_key_file_is_private_and_made_once(settings):
    key_file = settings.data_dir / "admin.key"
    with authorized_client(settings):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        first = admin_key(settings.data_dir)
    with authorized_client(settings) as again:  # a restart keeps the same admin key
        assert admin_key(settings.data_dir) == first
        keys = again.get("/v1/admin/keys").json()["data"]
    assert [k["role"] for k in keys] == ["admin"]


def test_a_registrar_whose_role_is_revoked_on_chain_cannot_write(client, world):
    """The service's own address loses REGISTRAR_ROLE: the contract refuses its writes, and
    receipts it signs afterwards fail verification."""
    service_address = client.get("/v1/chain").json()["registrar"]
    client.post("/v1/anchor")
    revoked = client.post(
        "/v1/admin/registrars", json={"address": service_address, "action": "revoke"}
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["registrar"] is False
    assert_problem(upload(client, SALES_CSV + "1,2,3\n"), 403, "not-authorized")
    receipt = client.post(
        f"/v1/models/{world['model']}/predict", json={"rows": [{"x1": 1, "x2": 2}]}
    ).json()["receipts"][0]
    report = client.post("/v1/verify/receipt", json={"receipt": receipt}).json()
    assert report["verdict"] == "invalid"
    check = next(c for c in report["checks"] if c["name"] == "signer_authorized")
    assert check["ok"] is False
    granted = client.post(
        "/v1/admin/registrars", json={"address": service_address, "action": "grant"}
    )
    assert granted.json()["registrar"] is True
    assert upload(client, SALES_CSV + "1,2,3\n").status_code == 201


def test_every_route_declares_its_access_in_its_own_signature(client):
    from api.auth import access_rules

    rules = {(route.path, m): rule for route, rule in access_rules(client.app.routes)
             for m in route.methods or ()}  # fmt: skip
    undeclared = sorted(
        key for key, rule in rules.items() if key[0].startswith(("/v1", "/rpc")) and rule is None
    )
    assert undeclared == []
    assert rules[("/v1/datasets", "POST")].role == "registrar"
    assert rules[("/v1/admin/fsck", "GET")].role == "admin"
    assert rules[("/v1/datasets", "GET")].read


def test_the_openapi_document_says_which_key_each_operation_needs(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/v1/datasets"]["post"]["x-required-role"] == "registrar"
    assert paths["/v1/datasets"]["get"]["x-required-role"] == "none"  # public reads are on
    assert {} in paths["/v1/datasets"]["get"]["security"]  # a key is optional there
    assert {} not in paths["/v1/datasets"]["post"]["security"]
    assert paths["/v1/admin/keys"]["get"]["x-required-role"] == "admin"
    assert paths["/rpc"]["post"]["x-required-role"] == "none"
    # expensive work and its jobs need an auditor key even while public reads are on
    assert paths["/v1/jobs/{job_id}"]["get"]["x-required-role"] == "auditor"
    assert {} not in paths["/v1/jobs/{job_id}"]["get"]["security"]
    roles = {op["x-required-role"] for item in paths.values() for op in item.values()
             if "x-required-role" in op}  # fmt: skip
    assert roles == {"none", "auditor", "registrar", "admin"}


def test_without_public_reads_the_document_asks_an_auditor_key(tmp_path):
    from api.settings import Settings

    closed = Settings(data_dir=tmp_path / "closed", public_read=False)
    with authorized_client(closed) as c:
        paths = c.get("/openapi.json").json()["paths"]
    assert paths["/v1/datasets"]["get"]["x-required-role"] == "auditor"
    assert {} not in paths["/v1/datasets"]["get"]["security"]


def test_the_access_rule_holds_even_without_the_gate():
    """The rule in the route's signature is enforced by the dependency too, so a route mounted
    without the gate in front of it still refuses (and says how to authenticate)."""
    from types import SimpleNamespace

    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from api.auth import NEEDS_ADMIN
    from api.problems import install_problem_handlers

    bare = FastAPI()
    bare.state.settings = SimpleNamespace(public_read=True)
    install_problem_handlers(bare)

    @bare.get("/secret")
    def secret(_=Depends(NEEDS_ADMIN)) -> dict:
        return {"ok": True}

    with TestClient(bare) as c:
        response = c.get("/secret")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
