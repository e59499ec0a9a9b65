"""Any Ethereum JSON-RPC node as the chain: anvil in development; geth, besu, reth or an L2 in
production. This is how the service grows past one machine."""

from __future__ import annotations

import os
from typing import ClassVar

import requests
from requests.adapters import HTTPAdapter
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from ledger.chain.backends.base import ChainBackend
from ledger.errors import ChainUnavailable

__all__ = [
    "DEV_CHAIN_IDS",
    "PUBLIC_CONFIRMATIONS",
    "RpcBackend",
    "default_confirmations",
    "node_session",
]

# Development nodes (anvil and hardhat: 31337; geth --dev: 1337) have one block producer and
# never reorganise unless told to: a block is final when it is mined.
DEV_CHAIN_IDS = frozenset({31337, 1337})
# Elsewhere, a block is final two Ethereum epochs deep (2 x 32 slots): where proof-of-stake
# Ethereum finalises, and deeper than any reorganisation seen on it or on the L2s built on it.
PUBLIC_CONFIRMATIONS = 64


def default_confirmations(chain_id: int) -> int:
    """The confirmations a write needs to be final on ``chain_id`` when none are set."""
    return 0 if chain_id in DEV_CHAIN_IDS else PUBLIC_CONFIRMATIONS


def node_session(url: str, *, connections: int = 64) -> requests.Session:
    """The HTTP session every call to the node at ``url`` goes through, shared by all threads.

    ``requests`` reads the environment (proxy variables, CA bundle, ``.netrc``) again for
    every request: 0.2 ms of each JSON-RPC call, about a tenth of a replica's CPU per upload.
    Here it is read once, when the service starts, with the same result: the proxies for
    ``url`` (``NO_PROXY`` honoured), ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``, and the
    ``.netrc`` entry for its host. The pool holds ``connections`` connections, so the service's
    threads keep theirs open instead of opening one per call."""
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.auth = requests.utils.get_netrc_auth(url)
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=connections)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class RpcBackend(ChainBackend):
    """A node reached over HTTP JSON-RPC.

    ``confirmations`` blocks must sit on top of a write's block before it counts as final
    (0 suits an instant-finality dev node; a public chain wants more). None: the chain's
    default (:func:`default_confirmations`), decided from its chain id when first needed.
    """

    kind: ClassVar[str] = "rpc"

    def __init__(self, url: str, *, confirmations: int | None = 0, timeout: float = 10.0) -> None:
        if confirmations is not None and confirmations < 0:
            raise ValueError("confirmations must be 0 or more")
        self.url = url
        self._confirmations = confirmations
        self._w3 = Web3(
            HTTPProvider(
                url,
                request_kwargs={"timeout": timeout},
                session=node_session(url),
                # web3's validation middleware asks the node its chain id before every
                # eth_call and send (0.4-0.6 requests an upload of issue 22's replicas): a
                # node's chain id does not change under it, so it is asked once a thread
                cache_allowed_requests=True,
                cacheable_requests={RPCEndpoint("eth_chainId")},
            )
        )

    @property
    def w3(self) -> Web3:
        return self._w3

    @property
    def confirmations(self) -> int:
        if self._confirmations is None:
            try:
                chain_id = self._w3.eth.chain_id
            except Exception as exc:  # the node is away: nothing can be final yet
                raise ChainUnavailable(f"the chain node is unreachable: {exc}") from exc
            self._confirmations = default_confirmations(chain_id)
        return self._confirmations
