"""Administration: where the ledger lives, on-chain registrars, API keys, tamper detection."""

from __future__ import annotations

from eth_utils import to_checksum_address

from api.errors import UnknownKey
from api.keys import ApiKeys
from api.schemas import (
    ChainPublic,
    FsckPublic,
    GenerationPublic,
    HealthPublic,
    KeyCreatedPublic,
    KeyPublic,
    KeyRevokedPublic,
    KeysPublic,
    RegistrarChangePublic,
    RegistrarPublic,
    ReorgPublic,
    Role,
)
from api.schemas.accepted import RegistrarAcceptedPublic
from api.service._core import Core
from ledger.index.fsck import fsck
from ledger.writes.pipeline import RoleInput

__all__ = ["Admin"]


class Admin:
    """What an operator manages; every method needs an admin key through the API, except
    :meth:`chain`, which anyone may read."""

    def __init__(self, core: Core, keys: ApiKeys) -> None:
        self._core = core
        self._keys = keys

    def chain(self) -> ChainPublic:
        """Backend, chain id, contract address and version, latest and indexed block."""
        core = self._core
        core.catch_up()  # the indexed block includes this process's own latest writes
        client = core.client
        deep = core.health.deepest()
        return ChainPublic(
            backend=core.backend.kind,
            chain_id=client.chain_id(),
            contract_address=client.address,
            contract_version=client.version(),
            latest_block=client.latest_block(),
            indexed_block=core.index.last_block,
            registrar=core.account.address,
            registrar_has_role=client.is_registrar(core.account.address),
            confirmations=core.backend.confirmations,
            generations=[
                GenerationPublic(
                    address=g.address, first_block=g.first_block, last_block=g.last_block
                )
                for g in client.generations
            ],
            deepest_reorg=max(core.writes.deepest_reorg, deep.depth if deep else 0),
            deepest_reorg_past_final=None
            if deep is None
            else ReorgPublic(
                fork_block=deep.fork_block,
                last_block=deep.last_block,
                depth=deep.depth,
                transactions=deep.transactions,
                resent=deep.resent,
                seen_at=int(deep.seen_at),
            ),
        )

    def latest_block(self) -> int:
        return self._core.client.latest_block()

    def health(self) -> HealthPublic:
        """Liveness, the chain's head, and why the service is degraded, if it is."""
        problems = self._core.health.problems()
        if (waiting := self._core.writes.waiting_for) is not None:
            problems.append(f"writes wait: {waiting}")
        return HealthPublic(
            status="degraded" if problems else "ok",
            latest_block=self.latest_block(),
            problems=problems,
        )

    def change_registrar(
        self, address: str, *, grant: bool, wait: str = "final"
    ) -> RegistrarChangePublic | RegistrarAcceptedPublic:
        """Grant or revoke ``REGISTRAR_ROLE`` on chain for an address, through the write
        pipeline (simulated first: an account without the admin role is refused before anything
        is sent; one transaction per change, as the contract has no batch for them). ``wait``
        as for dataset registrations (``accepted``: journaled, 202, on RPC chains)."""
        client = self._core.client
        address = to_checksum_address(address)
        item = RoleInput(address, grant)
        if wait == "accepted" and self._core.writes.journal is not None:
            self._core.writes.accept_many([item])
            return RegistrarAcceptedPublic(address=address, url=f"/v1/admin/registrars/{address}")
        tx = self._core.writes.write_many([item], early=wait == "included")[0]
        if isinstance(tx, Exception):
            raise tx
        self._core.catch_up()  # the index keeps role changes, which verification reads
        return RegistrarChangePublic(
            address=address,
            registrar=client.is_registrar(address),
            tx_hash=tx.tx_hash,
            block_number=tx.block_number,
        )

    def registrar(self, address: str) -> RegistrarPublic:
        """Whether ``address`` holds ``REGISTRAR_ROLE`` now, and every change of it."""
        client = self._core.client
        address = to_checksum_address(address)
        return RegistrarPublic(
            address=address,
            registrar=client.is_registrar(address),
            history=[
                {"block_number": block, "log_index": log_index, "granted": granted}
                for block, log_index, granted in client.registrar_history(address)
            ],
        )

    def create_key(self, role: Role, name: str) -> KeyCreatedPublic:
        """A new API key; its secret is in this answer and nowhere else."""
        self._core.settings.check_chars("name", name, "max_name_chars")
        info, key = self._keys.create(role, name)
        return KeyCreatedPublic(key_id=info.key_id, role=info.role, name=info.name, key=key)

    def keys(self) -> KeysPublic:
        keys = self._keys.list()
        return KeysPublic(
            data=[
                KeyPublic(
                    key_id=k.key_id,
                    role=k.role,
                    name=k.name,
                    created_at=k.created_at,
                    revoked_at=k.revoked_at,
                )
                for k in keys
            ],
            count=len(keys),
            roles=["auditor", "registrar", "admin"],
        )

    def revoke_key(self, key_id: str) -> KeyRevokedPublic:
        if not self._keys.revoke(key_id):
            raise UnknownKey(f"no active key {key_id}")
        return KeyRevokedPublic(key_id=key_id, revoked=True)

    def fsck(self) -> FsckPublic:
        """Re-hash every artifact and compare the index with the chain's events."""
        core = self._core
        core.catch_up()  # this process's own latest writes are not a finding
        findings = fsck(core.store, core.index, core.client)
        return FsckPublic(ok=not findings, findings=[f.to_json() for f in findings])
