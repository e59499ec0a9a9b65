"""The service over HTTP on anvil with ``--block-time 1`` when the node loses its transactions.

Two ways a node forgets what it was handed: a transaction dropped from its pool
(``anvil_dropTransaction``), and the node restarted without its pool (stopped and started on the
same port with ``--state``, so its blocks survive and its pool does not). Either way the service
notices by itself, hands the journaled transactions over again, and every acknowledged record
ends on the canonical chain, each nonce mined once; meanwhile reads say pending.

Blocks are held back (``evm_setIntervalMining 0``) only while the test makes the node lose the
transactions, so that they are in the pool when it happens; the node then mines every second
again, and the service looks for its transactions at each new head.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.cli.verify import service_pending
from ledger.chain.devnode import AnvilNode, anvil_binary
from tests.api.test_crash_recovery import _ok, _wait_until, rpc_service_env, serve
from tests.api.test_reorgs import CSV, _assert_healed, _pending, _register

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(anvil_binary() is None, reason="anvil not installed"),
]


def _pool(node: AnvilNode, address: str) -> list[str]:
    """The hashes of ``address``'s transactions in the pool, pending or queued behind a gap."""
    content = node.rpc("txpool_content")
    return [
        tx["hash"]
        for part in ("pending", "queued")
        for sender, txs in content[part].items()
        if sender.lower() == address.lower()
        for tx in txs.values()
    ]


def _accept(client: httpx.Client, n: int) -> dict[str, Any]:
    """A write answered on acceptance (202: durably queued), with the URL to poll."""
    answer = _ok(
        client.post("/v1/datasets?wait=accepted", files={"file": ("d.csv", f"{CSV}{n},7,7\n")}),
        202,
    )
    assert answer["chain_status"] == "pending"
    return answer


def _final(client: httpx.Client, accepted: dict[str, Any], server: Any) -> dict[str, Any]:
    """The record an accepted write became, once on chain (its URL answers 200)."""
    url = accepted["url"]
    _wait_until(lambda: client.get(url).status_code == 200, "it is on chain", server)
    return _ok(client.get(url))


def _nonces(client: httpx.Client, accepted: list[dict[str, Any]]) -> set[str]:
    """The nonces the service says it sent these writes at; empty unless every one is sent."""
    details = [client.get(a["url"]).json().get("detail", "") for a in accepted]
    if not all("sent at nonce" in d for d in details):
        return set()
    return {d.split("sent at nonce ")[1].split()[0] for d in details}


def _key(server: Any) -> str:
    return server.headers["Authorization"].removeprefix("Bearer ")


def _verifies_pending(client: httpx.Client, text: str) -> None:
    """``/v1/verify/dataset`` says pending, with what the write waits for: not registered on
    chain, and not "not registered" either (see ledger.verification.pending)."""
    report = _ok(client.post("/v1/verify/dataset", files={"file": ("d.csv", text)}))
    assert report["verdict"] == "pending", report
    [check] = [c for c in report["checks"] if c["name"] == "dataset_registered"]
    assert check["ok"] is None
    assert "on chain yet: pending (this service's write of it is " in check["detail"]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[AnvilNode]:
    with AnvilNode(tmp_path / "anvil", block_time=1) as anvil:
        yield anvil


def test_a_transaction_dropped_from_the_pool_is_sent_again(tmp_path: Path, node: AnvilNode) -> None:
    env = {**rpc_service_env(node, tmp_path), "anchor_interval": "3600"}
    with serve(tmp_path / "data", **env) as server, server.client(timeout=60) as client:
        before = _register(client, 0)
        registrar = _ok(client.get("/v1/chain"))["registrar"]
        node.rpc("evm_setIntervalMining", 0)  # hold the writes in the pool
        try:
            first = _accept(client, 1)
            _wait_until(lambda: len(_pool(node, registrar)) == 1, "it is in the pool", server)
            second = _accept(client, 2)  # the next nonce, behind the first
            _wait_until(lambda: len(_pool(node, registrar)) == 2, "both are pooled", server)
            dropped = _pool(node, registrar)
            for tx_hash in dropped:
                node.rpc("anvil_dropTransaction", tx_hash)
            assert _pool(node, registrar) == []
            assert _pending(client, first["content_hash"])
            assert _pending(client, second["content_hash"])
            _verifies_pending(client, f"{CSV}1,7,7\n")
            # what `provenance verify --service URL` asks of a record the node lacks
            said = service_pending(server.url, _key(server))(first["content_hash"])
            assert said is not None and said.startswith(f"the service at {server.url} says: ")
            assert "is pending: its write is " in said
            assert service_pending(server.url, _key(server))(before["content_hash"]) is None
        finally:
            node.rpc("evm_setIntervalMining", 1)
        # at the next head the service finds them gone from the node and hands them over again
        written = [_final(client, first, server), _final(client, second, server)]
        assert {w["tx_hash"] for w in written} == set(dropped)  # the same signed bytes
        assert "missing from the node: sent again" in server.log_path.read_text()
        after = _register(client, 3)
        _assert_healed(node, client, [before, *written, after], server)


def test_a_node_restarted_without_its_pool_gets_the_writes_again(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    node = AnvilNode(tmp_path / "anvil", state=state, block_time=1)
    try:
        env = {**rpc_service_env(node, tmp_path), "anchor_interval": "3600"}
        with serve(tmp_path / "data", **env) as server, server.client(timeout=60) as client:
            before = _register(client, 0)
            registrar = _ok(client.get("/v1/chain"))["registrar"]
            node.rpc("evm_setIntervalMining", 0)  # hold the writes in the pool
            accepted = [_accept(client, n) for n in (1, 2)]
            # both sent, in one transaction or two: the pool holds what the node will lose
            _wait_until(
                lambda: len(_pool(node, registrar)) == len(_nonces(client, accepted)) > 0,
                "both are pooled",
                server,
            )
            pooled = sorted(_pool(node, registrar))
            port = node.port
            node.stop()  # its chain is saved in `state`; its pool is not
            node = AnvilNode(tmp_path / "anvil", state=state, block_time=1, port=port)
            # its pool is gone (not asserted here: on a loaded machine the service may already
            # have handed them over again; the log line below says it found them missing)
            assert all(_pending(client, a["content_hash"]) for a in accepted)
            written = [_final(client, a, server) for a in accepted]
            assert {w["tx_hash"] for w in written} == set(pooled)  # the same signed bytes
            assert "missing from the node: sent again" in server.log_path.read_text()
            after = _register(client, 3)
            _assert_healed(node, client, [before, *written, after], server)
    finally:
        node.stop()
