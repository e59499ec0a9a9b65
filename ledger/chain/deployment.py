"""Deployment records: which contract generations, on which chain, from which artifacts.

A record in the data directory (or, for several replicas, in their shared database: any
:class:`RecordPlace`) makes deployment idempotent: it is reused when the code at its newest
address is exactly the committed artifact's runtime code, and refused otherwise, so a service
never talks to a contract it did not mean to.

A ledger is a chain of *generations* (DESIGN.md, "Contracts are immutable; upgrades are
generations"): ``provenance upgrade-contract`` deploys the committed artifact naming the newest
generation as its predecessor, and the record lists every generation, oldest first, with its
address, version, code hash and block range. Writes go to the newest; readers follow all of
them. An older generation must be a released version (:mod:`ledger.chain._releases`) or this
artifact, and each generation must name the one before it, checked on the chain at every start.
A newest generation that is a known older release is refused with the command that upgrades it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.exceptions import Web3Exception

from ledger.chain._releases import CURRENT_VERSION, RELEASED_CODE
from ledger.chain.backends.base import ChainBackend
from ledger.chain.client import Generation, LedgerClient
from ledger.chain.contract_artifact import load_artifact, masked_code_hash
from ledger.errors import DeploymentMismatch, LedgerError
from ledger.formats.events import REGISTRAR_ROLE, TOPICS
from ledger.storage._files import write_atomic

__all__ = [
    "Deployment",
    "DeploymentMissing",
    "GenerationRecord",
    "RecordPlace",
    "connect_ledger",
    "current_registrars",
    "deploy_ledger",
    "upgrade_ledger",
]

UPGRADE_CONTRACT_COMMAND = "provenance upgrade-contract"


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


class OlderContract(DeploymentMismatch):
    """The newest generation is a released older version: upgrading keeps all its records."""

    hint = (
        f"run `{UPGRADE_CONTRACT_COMMAND} --data-dir DIR` (add `--rpc-url URL --keystore FILE` "
        "on a node) to deploy the current contract as its successor; nothing recorded is lost"
    )


@dataclass(frozen=True)
class GenerationRecord:
    """One contract generation: where it is, what it is, and the blocks it took writes in
    (``last_block`` is None while it is the newest)."""

    address: str
    version: str
    code_hash: str
    tx_hash: str
    block_number: int
    last_block: int | None = None


@dataclass(frozen=True)
class Deployment:
    """Where the ledger contract lives and what code it must have.

    The top-level fields describe the newest generation (what records made before generations
    held, and what tools that know one contract read); ``generations`` lists all of them,
    oldest first, and is empty in a record of one generation written before 1.2.0."""

    chain_id: int
    address: str
    tx_hash: str
    block_number: int
    code_hash: str
    deployer: str
    generations: tuple[GenerationRecord, ...] = field(default=())

    @classmethod
    def load(cls, path: Path | RecordPlace) -> Deployment | None:
        if isinstance(path, Path):
            text = path.read_text(encoding="utf-8") if path.exists() else None
        else:
            text = path.read_text()
        if text is None:
            return None
        try:
            doc: dict[str, Any] = json.loads(text)
            generations = tuple(GenerationRecord(**g) for g in doc.pop("generations", ()))
            return cls(**doc, generations=generations)
        except (ValueError, TypeError) as exc:
            raise LedgerError(f"{path} is not a deployment record: {exc}") from exc

    def save(self, path: Path | RecordPlace) -> None:
        doc = asdict(self)
        if not self.generations:
            del doc["generations"]  # a one-generation record keeps its pre-1.2.0 form
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        if isinstance(path, Path):
            write_atomic(path, text.encode())
        else:
            path.write_text(text)

    def all_generations(self) -> tuple[GenerationRecord, ...]:
        """Every generation, oldest first (a pre-1.2.0 record is one generation whose version
        its code hash tells)."""
        if self.generations:
            return self.generations
        version = RELEASED_CODE.get(self.code_hash, "")
        if self.code_hash == load_artifact().code_hash:
            version = CURRENT_VERSION
        return (
            GenerationRecord(
                self.address, version, self.code_hash, self.tx_hash, self.block_number
            ),
        )


def deploy_ledger(
    backend: ChainBackend, account: LocalAccount, record_path: Path | RecordPlace
) -> LedgerClient:
    """Deploy the committed artifact as a first generation and write its deployment record."""
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


def upgrade_ledger(
    backend: ChainBackend, account: LocalAccount, record_path: Path | RecordPlace
) -> LedgerClient:
    """Deploy the committed artifact as the successor of the recorded newest generation and
    record it; every earlier generation stays in the record, and is checked first. Whoever
    holds ``REGISTRAR_ROLE`` in the newest generation is granted it in the new one (roles are
    per contract), so registrars keep writing after the upgrade; the deployer is admin and
    registrar of the new generation, as of every first one."""
    deployment = Deployment.load(record_path)
    if deployment is None:
        raise DeploymentMissing(f"no deployment record at {record_path}: nothing to upgrade")
    generations = _checked_generations(backend, account, deployment, record_path, newest=False)
    newest = generations[-1]
    if newest.code_hash == load_artifact().code_hash:
        raise DeploymentMismatch(
            f"{newest.address} already runs this contract ({newest.version}): nothing to upgrade",
            address=newest.address,
        )
    registrars = current_registrars(backend, newest.address, newest.block_number)
    client, tx = LedgerClient.deploy(backend, account, predecessor=newest.address)
    for registrar in registrars:  # each generation has its own roles: the holders carry over
        if registrar != account.address:
            client.grant_registrar(registrar)
    code_hash = load_artifact().code_hash
    upgraded = (
        *generations[:-1],
        replace(newest, last_block=tx.block_number - 1),
        GenerationRecord(client.address, CURRENT_VERSION, code_hash, tx.tx_hash, tx.block_number),
    )
    Deployment(
        chain_id=deployment.chain_id,
        address=client.address,
        tx_hash=tx.tx_hash,
        block_number=tx.block_number,
        code_hash=code_hash,
        deployer=account.address,
        generations=upgraded,
    ).save(record_path)
    return connect_ledger(backend, account, record_path, deploy_if_missing=False)


def connect_ledger(
    backend: ChainBackend,
    account: LocalAccount,
    record_path: Path | RecordPlace,
    *,
    deploy_if_missing: bool,
) -> LedgerClient:
    """A client for the recorded deployment's newest generation, checked against the
    artifact, that reads every generation.

    Deploys (and records) a fresh contract when there is no record and ``deploy_if_missing``.
    """
    deployment = Deployment.load(record_path)
    if deployment is None:
        if not deploy_if_missing:
            raise DeploymentMissing(f"no deployment record at {record_path}")
        return deploy_ledger(backend, account, record_path)
    generations = _checked_generations(backend, account, deployment, record_path, newest=True)
    newest = generations[-1]
    client = LedgerClient(
        backend,
        account,
        newest.address,
        deploy_block=generations[0].block_number,  # the ledger's history starts there
        generations=tuple(Generation(g.address, g.block_number, g.last_block) for g in generations),
    )
    return client


def _checked_generations(
    backend: ChainBackend,
    account: LocalAccount,
    deployment: Deployment,
    record_path: Path | RecordPlace,
    *,
    newest: bool,
) -> tuple[GenerationRecord, ...]:
    """The record's generations after checking, on the chain: the chain id; each one's code
    (the artifact's, or an older release's); each one naming the one before as predecessor.
    With ``newest``, the newest generation must run the committed artifact."""
    generations = deployment.all_generations()
    expected = load_artifact().code_hash
    previous: str | None = None
    for position, generation in enumerate(generations):
        client = LedgerClient(backend, account, generation.address)
        if position == 0 and client.chain_id() != deployment.chain_id:
            raise DeploymentMismatch(
                f"{record_path} is for chain {deployment.chain_id}, the node is chain "
                f"{client.chain_id()}"
            )
        code = client.deployed_code()
        found = masked_code_hash(code, load_artifact().immutable_ranges)
        if found != expected:
            found = masked_code_hash(code, ())  # released versions have no immutables
        is_newest = position == len(generations) - 1
        if found != expected and (found not in RELEASED_CODE or generation.code_hash != found):
            raise DeploymentMismatch(
                f"code at {generation.address} ({_version_of(client)}) is {found}, the "
                f"artifact's is {expected}",
                address=generation.address,
                found=found,
                expected=expected,
            )
        if found != expected and is_newest and newest:
            raise OlderContract(
                f"code at {generation.address} is the released ProvenanceLedger "
                f"{RELEASED_CODE[found]}, this service runs {CURRENT_VERSION}, which succeeds "
                "it as a new generation and keeps every record readable",
                address=generation.address,
                found=found,
                expected=expected,
            )
        if found == expected:
            named = LedgerClient(backend, account, generation.address).predecessor()
            if named != previous:
                raise DeploymentMismatch(
                    f"{generation.address} names {named} as its predecessor, the record {previous}",
                    address=generation.address,
                )
        elif previous is not None:
            raise DeploymentMismatch(
                f"{generation.address} is a released {RELEASED_CODE[found]} contract, which "
                "cannot succeed another generation",
                address=generation.address,
            )
        previous = generation.address
    return generations


def _version_of(client: LedgerClient) -> str:
    """What the refused contract says it is: tells an older ledger from a foreign contract."""
    try:
        return f"version {client.version()}"
    except (LedgerError, Web3Exception):  # no code there, or code without version()
        return "no version()"


_HAS_ROLE_ABI = [
    {
        "type": "function",
        "name": "hasRole",
        "stateMutability": "view",
        "inputs": [{"name": "role", "type": "bytes32"}, {"name": "account", "type": "address"}],
        "outputs": [{"name": "", "type": "bool"}],
    }
]


def current_registrars(backend: ChainBackend, address: str, from_block: int) -> list[str]:
    """The accounts holding ``REGISTRAR_ROLE`` in the contract at ``address`` now: every account
    its ``RoleGranted`` events named since ``from_block`` (its deployment), kept if ``hasRole``
    still says so. OpenZeppelin AccessControl's own interface, the same in every release."""
    w3 = backend.w3
    topics = ["0x" + TOPICS["RoleGranted"].hex(), "0x" + REGISTRAR_ROLE.hex()]
    try:
        logs = w3.eth.get_logs(
            {"address": address, "fromBlock": from_block, "toBlock": "latest", "topics": topics}
        )
        named = sorted({to_checksum_address(bytes(log["topics"][2])[12:]) for log in logs})
        roles = w3.eth.contract(address=to_checksum_address(address), abi=_HAS_ROLE_ABI)
        return [a for a in named if roles.functions.hasRole(REGISTRAR_ROLE, a).call()]
    except (Web3Exception, OSError) as exc:
        raise LedgerError(f"reading the registrars of {address}: {exc}") from exc
