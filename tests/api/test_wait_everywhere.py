"""``?wait=accepted|included|final`` on every write the API makes, on anvil ``--block-time 1``.

Batch registration, derivation, training, revocation, registrar changes, anchoring and stream
seals take ``wait`` as single registration does: ``included`` answers at inclusion, ``accepted``
answers 202 (a batch: each new file 202) with a URL to poll once the write is durable (journaled;
for anchoring and seals, planned in the receipt book or the stream store), and a bad value is the
same 422 problem on each. Accepted writes of every kind survive kill -9 while the base fee holds
them unsigned (over the ceiling): after a restart each one ends on chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.chain.devnode import AnvilNode, anvil_binary
from tests.api.test_crash_recovery import RAW_CSV, _ok, _wait_until, kill, rpc_service_env, serve
from tests.api.test_reorgs import CSV, _register

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(anvil_binary() is None, reason="anvil not installed"),
]
GWEI = 10**9
ALICE, BOB = "0x" + "a1" * 20, "0x" + "b0" * 20
STEPS = {"steps": [{"step": "drop_duplicates"}, {"step": "drop_missing"}]}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[AnvilNode]:
    with AnvilNode(tmp_path / "anvil", block_time=1) as anvil:
        yield anvil


def _files(*texts: str) -> list[tuple[str, tuple[str, str]]]:
    return [("file", (f"d{n}.csv", text)) for n, text in enumerate(texts)]


def _accepted(answer: httpx.Response, key: str) -> dict[str, Any]:
    body = _ok(answer, 202)
    assert body["chain_status"] == "pending" and answer.headers["location"] == body["url"]
    assert key in body
    return body


def _train(client: httpx.Client, dataset: str, wait: str) -> httpx.Response:
    body = {"dataset": dataset, "algorithm": "linear_regression", "target": "y", "test_size": 0}
    return client.post(f"/v1/models?wait={wait}", json=body)


def test_every_write_takes_wait_and_accepted_ones_survive_a_sigkill(
    tmp_path: Path, node: AnvilNode
) -> None:
    env = {**rpc_service_env(node, tmp_path), "anchor_interval": "3600"}
    data_dir = tmp_path / "data"
    with serve(data_dir, **env) as server, server.client(timeout=60) as client:
        raw = _ok(client.post("/v1/datasets", files={"file": ("r.csv", RAW_CSV)}), 201)
        trained_on, to_revoke = _register(client, 0), _register(client, 1)
        # included, on each kind of write
        batch = _ok(
            client.post("/v1/datasets/batch?wait=included", files=_files(f"{CSV}5,5,5\n")), 200
        )
        assert [e["status"] for e in batch["data"]] == [201]
        assert batch["data"][0]["chain_status"] in ("included", "final")
        derived = _ok(
            client.post(f"/v1/datasets/{raw['content_hash']}/derive?wait=included", json=STEPS),
            201,
        )
        assert derived["chain_status"] in ("included", "final")
        model = _ok(_train(client, trained_on["content_hash"], "included"), 201)
        assert model["chain_status"] in ("included", "final")
        revoked = _ok(
            client.post(
                f"/v1/records/{batch['data'][0]['content_hash']}/revoke?wait=included",
                json={"reason": "test"},
            )
        )
        assert revoked["revoked"] is True
        granted = _ok(client.post("/v1/admin/registrars?wait=included", json=_grant(ALICE)))
        assert granted["registrar"] is True
        # anchoring: included in a block; the receipt shows its anchoring once final
        [receipt] = _predict(client, model["model_hash"])
        [anchored] = _ok(client.post("/v1/anchor?wait=included"))["batches"]
        assert anchored["state"] == "included" and anchored["tx_hash"], anchored
        _wait_until(
            lambda: _receipt_status(client, receipt) == "anchored", "marked anchored", server
        )
        # a stream seal: each chunk and version in a block
        _ok(client.post("/v1/streams", json=STREAM), 201)
        _ok(client.post("/v1/streams/s/readings", json=_readings(0, 3)), 202)
        sealed = _ok(client.post("/v1/streams/s/seal?wait=included"))
        assert [v["readings"] for v in sealed["data"]] == [3]
        # a bad value: the same problem everywhere
        h = raw["content_hash"]
        for answer in (
            client.post("/v1/datasets?wait=soon", files={"file": ("x.csv", CSV)}),
            client.post("/v1/datasets/batch?wait=soon", files=_files(CSV)),
            client.post(f"/v1/datasets/{h}/derive?wait=soon", json=STEPS),
            _train(client, h, "soon"),
            client.post(f"/v1/records/{h}/revoke?wait=soon", json={"reason": "x"}),
            client.post("/v1/admin/registrars?wait=soon", json=_grant(BOB)),
            client.post("/v1/anchor?wait=soon"),
            client.post("/v1/streams/s/seal?wait=soon"),
        ):
            assert answer.status_code == 422, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            problem = answer.json()
            assert problem["type"] == "urn:provenance-ledger:problem:invalid-request", problem
            assert "wait" in problem["detail"]

    # accepted while the base fee is over the ceiling: journaled, not signed; then kill -9
    with serve(data_dir, **env, max_fee_per_gas=str(GWEI)) as server, server.client() as client:
        node.rpc("anvil_setNextBlockBaseFeePerGas", hex(400 * GWEI))
        _wait_until(lambda: _head_fee(node) > GWEI, "the fee spikes", server)
        batch = _ok(
            client.post(
                "/v1/datasets/batch?wait=accepted", files=_files(f"{CSV}6,6,6\n", f"{CSV}7,7,7\n")
            ),
            200,
        )
        assert [e["status"] for e in batch["data"]] == [202, 202]
        assert all(e["chain_status"] == "pending" for e in batch["data"])
        polls = [e["url"] for e in batch["data"]]
        polls.append(
            _accepted(
                client.post(
                    f"/v1/datasets/{derived['content_hash']}/derive?wait=accepted",
                    json={
                        "steps": [{"step": "filter_rows", "column": "x1", "op": ">=", "value": 150}]
                    },
                ),
                "content_hash",
            )["url"]
        )
        polls.append(
            _accepted(_train(client, to_revoke["content_hash"], "accepted"), "model_hash")["url"]
        )
        revocation = _accepted(
            client.post(
                f"/v1/records/{trained_on['content_hash']}/revoke?wait=accepted",
                json={"reason": "accepted"},
            ),
            "record_hash",
        )
        role = _accepted(
            client.post("/v1/admin/registrars?wait=accepted", json=_grant(BOB)), "address"
        )
        [receipt] = _predict(client, model["model_hash"])
        anchoring = _accepted(client.post("/v1/anchor?wait=accepted"), "batches")
        [batch] = anchoring["batches"]
        assert (batch["chain_status"], batch["count"], batch["url"]) == (
            "pending",
            1,
            anchoring["url"],
        )
        polls.append(batch["url"])
        _ok(client.post("/v1/streams/s/readings", json=_readings(3, 5)), 202)
        seal = _accepted(client.post("/v1/streams/s/seal?wait=accepted"), "stream")
        assert seal["readings"] == 2 and seal["url"] == "/v1/streams/s/versions"
        for url in polls:
            assert client.get(url).json()["type"].endswith(":record-pending")
        assert _ok(client.get(role["url"]))["registrar"] is False
        assert _ok(client.get(revocation["url"]))["revoked"] is False
        assert _receipt_status(client, receipt) == "pending"
        assert _ok(client.get(seal["url"]))["count"] == 1
        kill(server)

    with serve(data_dir, **env) as server, server.client(timeout=60) as client:
        for url in polls:
            _wait_until(lambda u=url: client.get(u).status_code == 200, f"{url} on chain", server)
        _wait_until(
            lambda: client.get(revocation["url"]).json()["revoked"] is True, "revoked", server
        )
        _wait_until(lambda: client.get(role["url"]).json()["registrar"], "granted", server)
        _wait_until(lambda: _receipt_status(client, receipt) == "anchored", "anchored", server)
        _wait_until(lambda: _ok(client.get(seal["url"]))["count"] == 2, "sealed", server)
        assert _ok(client.get(seal["url"]))["data"][0]["readings"] == 5  # newest first


STREAM = {
    "name": "s",
    "columns": [{"name": "x", "type": "integer"}],
    "seal_readings": 1000,
    "seal_seconds": 3600,
}


def _readings(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "x": i} for i in range(start, stop)]


def _predict(client: httpx.Client, model_hash: str) -> list[str]:
    answer = client.post(f"/v1/models/{model_hash}/predict", json={"rows": [{"x1": 1, "x2": 2}]})
    return [r["receipt_id"] for r in _ok(answer)["receipts"]]


def _receipt_status(client: httpx.Client, receipt_id: str) -> str:
    return str(_ok(client.get(f"/v1/receipts/{receipt_id}"))["status"])


def _grant(address: str) -> dict[str, str]:
    return {"address": address, "action": "grant"}


def _head_fee(node: AnvilNode) -> int:
    return int(node.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)


def test_a_revocation_answered_at_inclusion_says_revoked_before_it_is_final(
    tmp_path: Path, node: AnvilNode
) -> None:
    env = {**rpc_service_env(node, tmp_path), "anchor_interval": "3600", "confirmations": "3"}
    with serve(tmp_path / "data", **env) as server, server.client(timeout=60) as client:
        dataset = _register(client, 7)["content_hash"]
        revoked = _ok(
            client.post(f"/v1/records/{dataset}/revoke?wait=included", json={"reason": "bad"})
        )
        # the index shows the revocation only 3 blocks later; the answer says it at once
        assert revoked["revoked"] is True, revoked
        revocation = revoked["revocation"]
        assert revocation["reason"] == "bad" and revocation["tx_hash"].startswith("0x")
        _wait_until(
            lambda: client.get(f"/v1/records/{dataset}").json()["revoked"] is True,
            "the index shows the revocation",
            server,
        )
        assert client.get(f"/v1/records/{dataset}").json()["revocation"] == revocation
