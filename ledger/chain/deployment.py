"""Deployment records: which contract, on which chain, from which artifact.

A record in the data directory makes deployment idempotent: it is reused when the code at its
address is exactly the committed artifact's runtime code, and refused otherwise, so a service
never talks to a contract it did not mean to.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3.exceptions import Web3Exception

from ledger.chain.backends.base import ChainBackend
from ledger.chain.client import LedgerClient
from ledger.chain.contract_artifact import load_artifact
from ledger.errors import DeploymentMismatch, LedgerError
from ledger.storage._files import write_atomic

__all__ = ["Deployment", "DeploymentMissing", "connect_ledger", "deploy_ledger"]


class DeploymentMissing(LedgerError):
    """No deployment record exists for this chain."""

    hint = "deploy first with `provenance deploy --rpc-url URL --keystore FILE`"


@dataclass(frozen=True)
class Deployment:
    """Where the ledger contract lives and what code it must have."""

    chain_id: int
    address: str
    tx_hash: str
    block_number: int
    code_hash: str
    deployer: str

    @classmethod
    def load(cls, path: Path) -> Deployment | None:
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise LedgerError(f"{path} is not a deployment record: {exc}") from exc

    def save(self, path: Path) -> None:
        write_atomic(path, (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode())


def deploy_ledger(backend: ChainBackend, account: LocalAccount, record_path: Path) -> LedgerClient:
    """Deploy the committed artifact and write its deployment record."""
    client, tx = LedgerClient.deploy(backend, account)
    Deployment(
        chain_id=client.chain_id(),
        address=client.address,
        tx_hash=tx.tx_hash,
        block_number=tx.block_number,
        code_hash=load_artifact().code_hash,
        deployer=account.address,
    ).save(record_path)
    return client


def connect_ledger(
    backend: ChainBackend,
    account: LocalAccount,
    record_path: Path,
    *,
    deploy_if_missing: bool,
) -> LedgerClient:
    """A client for the recorded deployment, checked against the artifact.

    Deploys (and records) a fresh contract when there is no record and ``deploy_if_missing``.
    """
    deployment = Deployment.load(record_path)
    if deployment is None:
        if not deploy_if_missing:
            raise DeploymentMissing(f"no deployment record at {record_path}")
        return deploy_ledger(backend, account, record_path)
    client = LedgerClient(
        backend, account, deployment.address, deploy_block=deployment.block_number
    )
    if client.chain_id() != deployment.chain_id:
        raise DeploymentMismatch(
            f"{record_path} is for chain {deployment.chain_id}, the node is chain "
            f"{client.chain_id()}"
        )
    expected = load_artifact().code_hash
    found = "sha256:" + hashlib.sha256(client.deployed_code()).hexdigest()
    if found != expected:
        raise DeploymentMismatch(
            f"code at {deployment.address} ({_version_of(client)}) is {found}, the artifact's "
            f"is {expected}",
            address=deployment.address,
            found=found,
            expected=expected,
        )
    return client


def _version_of(client: LedgerClient) -> str:
    """What the refused contract says it is: tells an older ledger from a foreign contract."""
    try:
        return f"version {client.version()}"
    except (LedgerError, Web3Exception):  # no code there, or code without version()
        return "no version()"
