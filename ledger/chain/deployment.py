"""Deployment records: which contract, on which chain, from which artifact.

A record in the data directory (or, for several replicas, in their shared database: any
:class:`RecordPlace`) makes deployment idempotent: it is reused when the code at its address is
exactly the committed artifact's runtime code, and refused otherwise, so a service never talks
to a contract it did not mean to.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from eth_account.signers.local import LocalAccount
from web3.exceptions import Web3Exception

from ledger.chain.backends.base import ChainBackend
from ledger.chain.client import LedgerClient
from ledger.chain.contract_artifact import load_artifact
from ledger.errors import DeploymentMismatch, LedgerError
from ledger.storage._files import write_atomic

__all__ = ["Deployment", "DeploymentMissing", "RecordPlace", "connect_ledger", "deploy_ledger"]


class RecordPlace(Protocol):
    """Somewhere other than a file that keeps the record's JSON text (the shared database's
    ``deployment`` row, :class:`ledger.storage.postgres.PgDeploymentRecord`); its ``str()``
    names it in messages, as a path does."""

    def read_text(self) -> str | None:
        """The record's text, or None when there is none."""
        ...

    def write_text(self, text: str) -> None:
        """Keep ``text`` as the record, whole or not at all."""
        ...


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
    def load(cls, path: Path | RecordPlace) -> Deployment | None:
        if isinstance(path, Path):
            text = path.read_text(encoding="utf-8") if path.exists() else None
        else:
            text = path.read_text()
        if text is None:
            return None
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError) as exc:
            raise LedgerError(f"{path} is not a deployment record: {exc}") from exc

    def save(self, path: Path | RecordPlace) -> None:
        text = json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"
        if isinstance(path, Path):
            write_atomic(path, text.encode())
        else:
            path.write_text(text)


def deploy_ledger(
    backend: ChainBackend, account: LocalAccount, record_path: Path | RecordPlace
) -> LedgerClient:
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
    record_path: Path | RecordPlace,
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
