"""Shared fixtures: one conformance harness, run on the embedded chain and on anvil.

Every test that takes ``chain`` (or anything built on it) runs once per backend, like web3.py's
module-testing suites run against eth-tester and go-ethereum alike.

``paced_chain`` is the same harness with a real chain's cadence on its anvil side: a node that
mines a block every second (``--block-time 1``) instead of one per transaction, so writes wait
in its pool and gathering them matters. Each of its blocks costs a test a second: keep the tests
that use it few and short.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.backends.base import ChainBackend
from ledger.chain.backends.embedded import EmbeddedBackend
from ledger.chain.backends.rpc import RpcBackend
from ledger.chain.client import LedgerClient
from ledger.chain.devnode import AnvilNode, anvil_binary

ETHER = 10**18
# The services the tests start, in process and as child processes, start no training process
# until a training needs one: most never train, and each training process imports scikit-learn
# (1-2 s of CPU for every service started). tests/api/test_training_warm.py holds both ways.
os.environ.setdefault("PROVENANCE_TRAINING_WARM", "false")
# PostgreSQL and SeaweedFS for the conformance tests of the shared engines
pytest_plugins = ["tests._engines"]


# The longest test of all (six to ten minutes on a loaded 2-core machine): it starts first.
LONGEST = Path(__file__).parent / "test_bench_quick.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The benchmarks' run first; everything else in its collected order.

    Why: collected alphabetically, the longest test came last, and one xdist worker ran it
    alone for minutes while the other sat idle. Started first, it overlaps the rest, and
    ``--dist worksteal`` (``scripts/test``) evens out the end with short tests. Only this one
    moves: tests/console's session-wide browser must start after the tests in tests/api that
    drive a browser of their own (Playwright's sync API refuses to start inside another's
    loop), which the collected order gives. Every worker gets the same order, as xdist
    requires: a stable sort of the same collection.
    """
    items.sort(key=lambda item: item.path != LONGEST)


@dataclass
class Chain:
    """A backend plus a way to fund fresh accounts on it."""

    name: str
    backend: ChainBackend
    node: AnvilNode | None = None

    def account(self) -> LocalAccount:
        """A fresh account holding 100 ether."""
        account = Account.create()
        if self.node is not None:
            self.node.set_balance(account.address, 100 * ETHER)
        else:
            self.backend.fund(account.address, 100 * ETHER)
        return account


@pytest.fixture(scope="session")
def anvil_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    if anvil_binary() is None:
        pytest.skip("anvil is not installed: run `npm ci --prefix contracts`")
    with AnvilNode(tmp_path_factory.mktemp("anvil")) as node:
        yield node


@pytest.fixture(scope="session")
def anvil_paced_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    """An anvil node that mines a block every second, whatever it holds."""
    if anvil_binary() is None:
        pytest.skip("anvil is not installed: run `npm ci --prefix contracts`")
    with AnvilNode(tmp_path_factory.mktemp("anvil-paced"), block_time=1) as node:
        yield node


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    if request.param == "embedded":
        backend = EmbeddedBackend()
        yield Chain("embedded", backend)
        backend.close()
    else:
        node = request.getfixturevalue("anvil_node")
        yield Chain("anvil", RpcBackend(node.url), node)


@pytest.fixture(params=["embedded", pytest.param("anvil-1s", marks=pytest.mark.anvil)])
def paced_chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """The embedded chain, and anvil with ``--block-time 1``."""
    if request.param == "embedded":
        backend = EmbeddedBackend()
        yield Chain("embedded", backend)
        backend.close()
    else:
        node = request.getfixturevalue("anvil_paced_node")
        yield Chain("anvil-1s", RpcBackend(node.url), node)


@dataclass
class Deployed:
    """A freshly deployed ledger and the accounts the tests play with."""

    chain: Chain
    admin: LedgerClient
    registrar: LedgerClient
    outsider: LedgerClient

    def as_account(self, account: LocalAccount) -> LedgerClient:
        return LedgerClient(
            self.chain.backend, account, self.admin.address, deploy_block=self.admin.deploy_block
        )


@pytest.fixture
def deployed(chain: Chain) -> Deployed:
    admin, _ = LedgerClient.deploy(chain.backend, chain.account())
    registrar_account, outsider_account = chain.account(), chain.account()
    admin.grant_registrar(registrar_account.address)
    as_account = Deployed(chain, admin, admin, admin).as_account
    return Deployed(chain, admin, as_account(registrar_account), as_account(outsider_account))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory: the CLI's default data directory is ``./.provenance``, and a
    command given ``--url`` sends that directory's ``admin.key`` if there is one. A checkout
    where ``./scripts/serve`` ran has one (of that service), which another test server refuses
    (401): the README's two commands, run in order, must not fail the suite."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
