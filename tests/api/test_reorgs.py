"""The service over HTTP on anvil with ``--block-time 1`` while the chain reorganises.

Each test serves ``provenance serve`` with ``PROVENANCE_CHAIN=rpc`` (keystore, deployment),
writes through HTTP, and replaces blocks with ``anvil_reorg``: shallower than the
confirmations during a write, and deeper than them right after an acknowledged write (with the
default 0 confirmations, any reorganisation is). Afterwards every acknowledged record is on the
canonical chain, the service key's transactions were each mined once at consecutive nonces, the
index matches the chain, and the service said why it was degraded. One test kills the service
with SIGKILL right after the reorganisation: the restart heals as well.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.chain.devnode import AnvilNode, anvil_binary
from tests.api.test_crash_recovery import _ok, _wait_until, kill, rpc_service_env, serve

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(anvil_binary() is None, reason="anvil not installed"),
]
CSV = "x1,x2,y\n100,200,5000\n200,300,6000\n"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    with AnvilNode(tmp_path_factory.mktemp("anvil-reorg"), block_time=1) as anvil:
        yield anvil


@pytest.fixture
def env(tmp_path: Path, node: AnvilNode) -> dict[str, str]:
    """Settings for a service on ``node``: a funded keystore and a fresh deployment."""
    return {**rpc_service_env(node, tmp_path), "anchor_interval": "3600"}


def _register(client: httpx.Client, n: int) -> dict[str, Any]:
    return _ok(client.post("/v1/datasets", files={"file": ("d.csv", f"{CSV}{n},1,1\n")}), 201)


def _digest(text: str) -> str:
    return "0x" + hashlib.sha256(text.encode()).hexdigest()


def _head(node: AnvilNode) -> int:
    return int(node.rpc("eth_blockNumber"), 16)


def _reorg_back_to(node: AnvilNode, block: int) -> None:
    """Replace every block from ``block`` on with empty ones (one more than needed: a block
    mined between reading the head and the call must not leave ``block`` standing)."""
    node.rpc("anvil_reorg", _head(node) - block + 2, [])


def _on_chain(node: AnvilNode, tx_hash: str) -> bool:
    receipt = node.rpc("eth_getTransactionReceipt", tx_hash)
    return receipt is not None and int(receipt["status"], 16) == 1


def _registered(client: httpx.Client, content_hash: str) -> bool:
    return client.get(f"/v1/datasets/{content_hash}").status_code == 200


def _pending(client: httpx.Client, content_hash: str) -> bool:
    """The API and the console say pending (never registered, never plain unknown)."""
    answer = client.get(f"/v1/datasets/{content_hash}")
    if answer.status_code != 404:
        return False
    problem = answer.json()
    if problem["type"] != "urn:provenance-ledger:problem:record-pending":
        return False
    assert problem["chain_status"] == "pending"
    page = client.get(f"/datasets/{content_hash}", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "is pending" in page.text
    return True


def _assert_healed(
    node: AnvilNode, client: httpx.Client, acknowledged: list[dict[str, Any]], server: Any
) -> None:
    """Every acknowledged record on the canonical chain and in the index, as answered (same
    transaction); the service key's transactions each mined once, at consecutive nonces."""
    for record in acknowledged:
        _wait_until(lambda r=record: _on_chain(node, r["tx_hash"]), "it is back", server)
        _wait_until(lambda r=record: _registered(client, r["content_hash"]), "indexed", server)
        assert (
            _ok(client.get(f"/v1/datasets/{record['content_hash']}"))["tx_hash"]
            == (record["tx_hash"])
        )
    assert _ok(client.get("/v1/datasets?limit=1"))["count"] == len(acknowledged)
    registrar = _ok(client.get("/v1/chain"))["registrar"]
    count = int(node.rpc("eth_getTransactionCount", registrar, "latest"), 16)
    nonces = []
    for number in range(1, _head(node) + 1):
        for tx in node.rpc("eth_getBlockByNumber", hex(number), True)["transactions"]:
            if tx["from"].lower() == registrar.lower():
                assert _on_chain(node, tx["hash"])
                nonces.append(int(tx["nonce"], 16))
    assert nonces == list(range(count))  # the deployment, then each write once


def test_a_reorganisation_past_finality_after_an_acknowledged_write_heals(
    tmp_path: Path, node: AnvilNode, env: dict[str, str]
) -> None:
    with serve(tmp_path / "data", **env) as server, server.client(timeout=60) as client:
        before = _register(client, 0)
        written = _register(client, 1)  # 201: on chain, final at 0 confirmations
        assert (written["chain_status"], written["confirmations"]) == ("final", 1)
        node.rpc("evm_setIntervalMining", 0)  # the re-sent write stays in the pool a while
        try:
            _reorg_back_to(node, written["block_number"])
            assert not _on_chain(node, written["tx_hash"])
            pending = lambda: _pending(client, written["content_hash"])  # noqa: E731
            _wait_until(pending, "it reads pending", server)
        finally:
            node.rpc("evm_setIntervalMining", 1)
        _wait_until(lambda: _ok(client.get("/healthz"))["status"] == "degraded", "told", server)
        [problem] = _ok(client.get("/healthz"))["problems"]
        assert "reorganisation past the final depth" in problem
        deep = _ok(client.get("/v1/chain"))["deepest_reorg_past_final"]
        assert deep["depth"] >= 1 and deep["resent"] >= 1
        after = _register(client, 2)  # not stuck behind the vanished nonce
        _assert_healed(node, client, [before, written, after], server)


def test_reorganisations_shallower_and_deeper_than_the_confirmations(
    tmp_path: Path, node: AnvilNode, env: dict[str, str]
) -> None:
    with (
        serve(tmp_path / "data", **env, confirmations="2") as server,
        server.client(timeout=60) as client,
    ):
        acknowledged = [_register(client, 0)]
        assert acknowledged[0]["chain_status"] == "final"
        # answered at inclusion: 201, but included, not final; reads say so too
        early = _ok(
            client.post("/v1/datasets?wait=included", files={"file": ("d.csv", f"{CSV}9,9,9\n")}),
            201,
        )
        assert early["chain_status"] == "included" and early["confirmations"] <= 2
        read = _ok(client.get(f"/v1/datasets/{early['content_hash']}"))
        assert read["chain_status"] in ("included", "final")  # final once 2 blocks passed
        acknowledged.append(early)
        # shallow: a write mined but not final yet is taken out of its block
        answer: list[dict[str, Any]] = []
        registrar = _ok(client.get("/v1/chain"))["registrar"]
        nonce = int(node.rpc("eth_getTransactionCount", registrar, "latest"), 16)
        writer = threading.Thread(target=lambda: answer.append(_register(client, 1)))
        writer.start()
        _wait_until(
            lambda: int(node.rpc("eth_getTransactionCount", registrar, "latest"), 16) > nonce,
            "the write is mined",
            server,
            every=0.02,
        )
        assert _pending(client, f"0x{'0' * 64}") is False  # unknown is not pending
        assert _pending(client, _digest(f"{CSV}1,1,1\n"))  # mined, not final
        node.rpc("anvil_reorg", 1, [])  # the head: the write's block or the one on it
        writer.join(timeout=60)
        acknowledged += answer
        assert len(answer) == 1
        # deep: right after an acknowledged (final) write, 4 blocks go
        acknowledged.append(_register(client, 2))
        node.rpc("anvil_reorg", 4, [])
        acknowledged.append(_register(client, 3))
        _assert_healed(node, client, acknowledged, server)
        assert _ok(client.get("/v1/chain"))["deepest_reorg"] >= 2
        final = _ok(client.get(f"/v1/datasets/{acknowledged[0]['content_hash']}"))
        assert final["chain_status"] == "final" and final["confirmations"] >= 3


def test_sigkill_during_a_reorganisation_heals_after_the_restart(
    tmp_path: Path, node: AnvilNode, env: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    with serve(data_dir, **env) as server, server.client(timeout=60) as client:
        acknowledged = [_register(client, 0), _register(client, 1)]
        _reorg_back_to(node, acknowledged[0]["block_number"])
        kill(server)  # before or while it notices
    with serve(data_dir, **env) as server, server.client(timeout=60) as client:
        acknowledged.append(_register(client, 2))
        _assert_healed(node, client, acknowledged, server)


def test_writes_answered_on_acceptance_survive_a_sigkill_and_a_fee_spike(
    tmp_path: Path, node: AnvilNode, env: dict[str, str]
) -> None:
    """``?wait=accepted`` answers 202 once the record is durably queued. Here the base fee is
    over the ceiling, so nothing is even signed: the service is killed with the writes held,
    and after a restart (ceiling raised) every accepted record ends on chain, once."""
    data_dir = tmp_path / "data"
    accepted = []
    with serve(data_dir, **env, max_fee_per_gas=str(10**9)) as server, server.client() as client:
        # 400 gwei, falling 12.5% a block: over the 1 gwei ceiling for the next 40 blocks
        node.rpc("anvil_setNextBlockBaseFeePerGas", hex(400 * 10**9))
        _wait_until(lambda: _head_fee(node) > 10**9, "the fee spikes", server)
        for n in range(3):
            answer = client.post(
                "/v1/datasets?wait=accepted", files={"file": ("d.csv", f"{CSV}{n},2,2\n")}
            )
            assert answer.status_code == 202, answer.text
            assert answer.headers["location"] == answer.json()["url"]
            accepted.append(answer.json())
        problem = client.get(accepted[0]["url"]).json()
        assert problem["type"].endswith(":record-pending") and "queued" in problem["detail"]
        health = _ok(client.get("/healthz"))
        assert health["status"] == "degraded"
        assert any("PROVENANCE_MAX_FEE_PER_GAS" in p for p in health["problems"])
        kill(server)
    with serve(data_dir, **env) as server, server.client(timeout=60) as client:
        for record in accepted:
            _wait_until(lambda r=record: _registered(client, r["content_hash"]), "on chain", server)
        written = [_ok(client.get(r["url"])) for r in accepted]
        _assert_healed(node, client, written, server)


def _head_fee(node: AnvilNode) -> int:
    return int(node.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
