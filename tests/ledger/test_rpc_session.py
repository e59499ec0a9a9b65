"""The node's HTTP session (``ledger.chain.backends.rpc.node_session``): the environment that
``requests`` would read on every call (proxies, ``NO_PROXY``) is read once, when the backend is
made, with the same effect on where calls go."""

from __future__ import annotations

import socket

import pytest
import requests

from ledger.chain.backends.rpc import RpcBackend, node_session
from ledger.chain.devnode import AnvilNode

pytestmark = pytest.mark.anvil


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                 "all_proxy", "NO_PROXY", "no_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_proxy_in_the_environment_is_used_and_no_proxy_honoured(
    anvil_node: AnvilNode, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")  # nobody listens
    proxied = RpcBackend(anvil_node.url)
    with pytest.raises(requests.exceptions.ProxyError):
        proxied.w3.eth.block_number  # noqa: B018 (the call is the test)
    clean_env.setenv("NO_PROXY", "127.0.0.1")
    assert RpcBackend(anvil_node.url).w3.eth.block_number >= 0


def test_the_environment_is_read_once_when_the_backend_is_made(
    anvil_node: AnvilNode, clean_env: pytest.MonkeyPatch
) -> None:
    backend = RpcBackend(anvil_node.url)
    clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    assert backend.w3.eth.block_number >= 0  # made before the proxy was set: goes direct
    session = node_session(anvil_node.url)
    assert session.trust_env is False and session.proxies["http"].startswith("http://127.0.0.1:")


def test_the_chain_id_is_asked_of_the_node_once_not_before_every_call(
    anvil_node: AnvilNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = RpcBackend(anvil_node.url)
    provider = backend.w3.provider
    sent: list[str] = []
    real = type(provider)._make_request
    monkeypatch.setattr(
        type(provider), "_make_request", lambda self, m, p: sent.append(m) or real(self, m, p)
    )
    account = backend.w3.eth.accounts[0]
    for _ in range(3):  # web3's validation asks for the chain id before each eth_call
        backend.w3.eth.call({"from": account, "to": account, "data": "0x"})
    assert sent.count("eth_call") == 3
    assert sent.count("eth_chainId") <= 2  # once to cache it (web3 asks one more to set up)
    assert backend.w3.eth.block_number >= 0 and sent[-1] == "eth_blockNumber"  # not cached
