"""Administration: API keys, keystores, deploying the contract, rebuilding the index, fsck.

``keys`` edits the key store of a data directory (``api.keys.KeyStore``, safe while the service
runs); ``keystore``, ``deploy`` and ``index rebuild`` talk to the chain with ``ledger`` calls,
because they are what sets a service up or repairs it; ``fsck`` asks the service over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from api.cli._common import (
    DEFAULT_DATA_DIR,
    CommandFailed,
    DataDirOpt,
    JsonOpt,
    command,
    emit,
    out,
)
from api.cli._service import ApiCall, check, service_command

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from api.keys import ApiKeys
    from api.settings import Settings
    from ledger.chain.backends.base import ChainBackend
    from ledger.storage.postgres import PgConnections

__all__ = [
    "deploy",
    "fsck",
    "index_rebuild",
    "keys_create",
    "keys_list",
    "keys_revoke",
    "keystore_create",
    "upgrade_contract",
]

PASSWORD_ENV = "PROVENANCE_KEYSTORE_PASSWORD"
PASSWORD_FILE_ENV = "PROVENANCE_KEYSTORE_PASSWORD_FILE"


# -- the chain --------------------------------------------------------------------------------


@command
def keystore_create(
    path: Annotated[Path, typer.Argument(help="where to write the keystore (mode 0600)")],
) -> None:
    """Create a new key in an encrypted JSON keystore; the password comes from
    $PROVENANCE_KEYSTORE_PASSWORD or the file named by $PROVENANCE_KEYSTORE_PASSWORD_FILE."""
    from ledger.chain.keys import create_keystore, read_password
    from ledger.errors import LedgerError

    if path.exists():
        raise CommandFailed(f"{path} exists; refusing to overwrite a key")
    try:
        account = create_keystore(path, read_password(PASSWORD_ENV, PASSWORD_FILE_ENV))
    except LedgerError as exc:
        raise CommandFailed(str(exc)) from None
    out.print(f"created {path} for address {account.address}")


@command
def deploy(
    rpc_url: Annotated[str, typer.Option(help="the JSON-RPC node to deploy to")],
    keystore: Annotated[Path, typer.Option(exists=True, help="encrypted JSON keystore")],
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Deploy the committed contract artifact and write the deployment record that
    `serve` uses with PROVENANCE_CHAIN=rpc."""
    from api.engines import deployment_place
    from ledger.chain.backends.rpc import RpcBackend
    from ledger.chain.deployment import Deployment, deploy_ledger
    from ledger.chain.keys import load_keystore, read_password
    from ledger.errors import LedgerError

    try:
        with _shared_state(data_dir) as (settings, db):
            record = deployment_place(settings, db)
            account = load_keystore(keystore, read_password(PASSWORD_ENV, PASSWORD_FILE_ENV))
            existing = Deployment.load(record)
            if existing is not None:
                raise CommandFailed(f"{record} already records {existing.address}")
            client = deploy_ledger(RpcBackend(rpc_url), account, record)
    except LedgerError as exc:
        raise CommandFailed(str(exc)) from None
    out.print(f"deployed ProvenanceLedger at {client.address} on chain {client.chain_id()}")
    out.print(f"wrote {record}")


@command
def upgrade_contract(
    rpc_url: Annotated[
        str | None, typer.Option(help="the JSON-RPC node (default: the data directory's chain)")
    ] = None,
    keystore: Annotated[
        Path | None,
        typer.Option(exists=True, help="encrypted JSON keystore (default: the service's key)"),
    ] = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Deploy the committed contract as the successor of the recorded newest generation and
    add it to the deployment record: every earlier record stays readable, new writes go to it.

    Without --rpc-url and --keystore, the data directory's own chain and key are used (the
    embedded chain's service key, or PROVENANCE_RPC_URL and PROVENANCE_KEYSTORE). With the
    embedded chain, stop the service first: its chain has one writer at a time.
    """
    from api.engines import deployment_place
    from ledger.chain.deployment import upgrade_ledger
    from ledger.errors import LedgerError

    try:
        with _shared_state(data_dir) as (settings, db):
            record = deployment_place(settings, db)
            backend, account = _chain_and_key(settings, rpc_url, keystore)
            try:
                client = upgrade_ledger(backend, account, record)
                previous = client.generations[-2].address
                out.print(
                    f"deployed ProvenanceLedger {client.version()} at {client.address} on chain "
                    f"{client.chain_id()}, succeeding {previous} "
                    f"(generation {len(client.generations)})"
                )
            finally:
                backend.close()
    except LedgerError as exc:
        raise CommandFailed(str(exc)) from None
    out.print(f"wrote {record}")


def _chain_and_key(
    settings: Settings, rpc_url: str | None, keystore: Path | None
) -> tuple[ChainBackend, LocalAccount]:
    """The node and key given on the command line, else the data directory's own."""
    if rpc_url is None and keystore is None:
        from api.service._opening import open_backend

        try:
            return open_backend(settings)
        except Exception as exc:  # a bad setting, a chain held by a running service, ...
            raise CommandFailed(f"cannot open the chain in {settings.data_dir}: {exc}") from None
    if rpc_url is None or keystore is None:
        raise CommandFailed("give both --rpc-url and --keystore, or neither")
    from ledger.chain.backends.rpc import RpcBackend
    from ledger.chain.keys import load_keystore, read_password

    account = load_keystore(keystore, read_password(PASSWORD_ENV, PASSWORD_FILE_ENV))
    return RpcBackend(rpc_url), account


def _open_chain(settings: Settings) -> ChainBackend:
    """The chain a service with ``settings`` runs on (the index only reads from it)."""
    if settings.chain == "embedded":
        from ledger.chain.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(settings.data_dir / "chain")
    from ledger.chain.backends.rpc import RpcBackend

    assert settings.rpc_url is not None  # checked by Settings
    return RpcBackend(
        settings.rpc_url, confirmations=settings.confirmations, timeout=settings.rpc_timeout
    )


@command
def index_rebuild(data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Drop the index and rebuild it from the contract's events (the chain is the truth).

    With the embedded chain, stop the service first: its chain has one writer at a time.
    """
    from eth_account import Account

    from api.engines import deployment_place, open_index
    from ledger.chain.deployment import Deployment, connect_ledger
    from ledger.errors import LedgerError

    try:
        with _shared_state(data_dir) as (settings, db):
            record = deployment_place(settings, db)
            # checked first, so a mistyped directory gets no empty chain
            if Deployment.load(record) is None:
                raise CommandFailed(f"no deployment record at {record}: no ledger to index")
            try:
                backend = _open_chain(settings)
            except Exception as exc:  # a bad setting, a chain held by a running service, ...
                raise CommandFailed(f"cannot open the chain in {data_dir}: {exc}") from None
            try:
                # the rebuild only reads, so a throwaway key that holds no role is enough
                client = connect_ledger(backend, Account.create(), record, deploy_if_missing=False)
                with open_index(settings, db) as index:
                    count = index.rebuild(client)
                    out.print(
                        f"rebuilt the index from {count} events up to block {index.last_block}"
                    )
            finally:
                backend.close()
    except LedgerError as exc:
        raise CommandFailed(str(exc)) from None


# -- API keys and integrity -------------------------------------------------------------------


@contextmanager
def _shared_state(data_dir: Path) -> Iterator[tuple[Settings, PgConnections | None]]:
    """The settings for ``data_dir`` and the shared database they name, if any (its schema
    checked, its pool closed afterwards): ``PROVENANCE_DATABASE_URL`` set, ``keys`` and
    ``deploy`` act on the database every replica reads."""
    from api.engines import open_database
    from api.settings import Settings

    settings = Settings(data_dir=data_dir)
    db = open_database(settings)
    try:
        yield settings, db
    finally:
        if db is not None:
            db.close()


@contextmanager
def _key_store(data_dir: Path) -> Iterator[ApiKeys]:
    from api.engines import open_keys
    from ledger.errors import LedgerError

    try:
        with _shared_state(data_dir) as (settings, db):
            yield open_keys(settings, db)
    except LedgerError as exc:
        raise CommandFailed(str(exc)) from None


@command
def keys_create(
    role: Annotated[str, typer.Option(help="auditor, registrar or admin")],
    name: Annotated[str, typer.Option(help="who or what the key is for")] = "",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Create an API key; it is printed once, as the last word of the output."""
    try:
        with _key_store(data_dir) as keys:
            info, key = keys.create(role, name)
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None
    # plain print: the key is never wrapped, highlighted or read as markup
    print(f"created {info.role} key {info.key_id}; it is not stored anywhere, keep it: {key}")


def _show_keys(rows: list[dict[str, Any]]) -> None:
    for k in rows:
        state = "revoked" if k["revoked_at"] else "active"
        out.print(f"{k['key_id']}  {k['role']:<9} {state:<7} {k['name']}")


@command
def keys_list(data_dir: DataDirOpt = DEFAULT_DATA_DIR, as_json: JsonOpt = False) -> None:
    """List API keys (ids and roles; the secrets are never stored)."""
    keys = [
        {"key_id": k.key_id, "role": k.role, "name": k.name, "created_at": k.created_at,
         "revoked_at": k.revoked_at}
        for k in _listed(data_dir)
    ]  # fmt: skip
    emit(keys, as_json, _show_keys)


def _listed(data_dir: Path) -> list[Any]:
    with _key_store(data_dir) as keys:
        return keys.list()


@command
def keys_revoke(key_id: str, data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Revoke an API key; it stops working at the service's next request."""
    with _key_store(data_dir) as keys:
        revoked = keys.revoke(key_id)
    if not revoked:
        raise CommandFailed(f"no active key {key_id}")
    out.print(f"revoked {key_id}")


def _show_findings(report: dict[str, Any]) -> None:
    for f in report["findings"]:
        out.print(f"[red]{f['kind']}[/red] {f['subject']}: {f['detail']} "
                  f"(expected {f['expected']}, found {f['found']})")  # fmt: skip
    out.print("all artifacts and index rows match the chain" if report["ok"] else "")


@service_command()
def fsck(call: ApiCall) -> None:
    """Re-hash every artifact and compare the index with the chain; exit 1 on any finding."""
    with call.connect() as api:
        report = check(api.get("/v1/admin/fsck"))
    call.emit(report, _show_findings)
    if not report.get("ok"):
        raise typer.Exit(1)
