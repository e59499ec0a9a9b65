"""The ``provenance`` command: serve the API, run the demo, and drive every flow from a shell.

The whole command tree is assembled here, in the order ``provenance --help`` lists it; the
commands live in one module per group:

* :mod:`api.cli.serve`: ``serve`` and ``demo``;
* :mod:`api.cli.records`: ``dataset``, ``model``, ``predict``, ``lineage`` and ``bundle``, which
  call the HTTP API (:mod:`api.cli._service`: ``--url`` or the service in process);
* :mod:`api.cli.streams`: ``stream create|show|send|seal|versions|proof``, sensor readings;
* :mod:`api.cli.verify`: ``verify``, straight against a node with :mod:`ledger.verify`;
* :mod:`api.cli.audit`: ``audit``, many receipts at once, against a node or by the service;
* :mod:`api.cli.attest`: ``attest`` and ``verify-attestation``, in-toto attestations;
* :mod:`api.cli.admin`: ``keys``, ``keystore``, ``deploy``, ``upgrade-contract``, ``index``
  and ``fsck``;
* :mod:`api.cli.db`: ``db upgrade``, the shared database's schema.

Importing this package is cheap (typer and rich's console): every command imports what it
needs when it runs, so ``provenance --help`` and ``provenance verify`` start fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from api.cli import admin, attest, audit, db, records, serve, streams, verify

__all__ = ["app", "main"]

app = typer.Typer(
    name="provenance",
    help="Provenance Ledger: verifiable lineage for datasets, models and predictions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_COMMANDS: dict[str, Callable[..., None]] = {
    "serve": serve.serve,
    "demo": serve.demo,
    "predict": records.predict,
    "lineage": records.lineage,
    "revoke": records.revoke,
    "anchor": records.anchor,
    "verify": verify.verify,
    "audit": audit.audit,
    "bundle": records.bundle,
    "attest": attest.attest,
    "verify-attestation": attest.verify_attestation,
    "deploy": admin.deploy,
    "upgrade-contract": admin.upgrade_contract,
    "fsck": admin.fsck,
}
_GROUPS: dict[str, tuple[str, dict[str, Callable[..., None]]]] = {
    "dataset": (
        "Register, clean and inspect datasets.",
        {
            "register": records.dataset_register,
            "derive": records.dataset_derive,
            "show": records.dataset_show,
        },
    ),
    "model": (
        "Train and inspect models.",
        {"train": records.model_train, "show": records.model_show},
    ),
    "stream": (
        "Sensor streams: define, send readings, seal into versions, prove a reading.",
        {
            "create": streams.stream_create,
            "show": streams.stream_show,
            "send": streams.stream_send,
            "seal": streams.stream_seal,
            "versions": streams.stream_versions,
            "proof": streams.stream_proof,
        },
    ),
    "index": ("The index of the contract's events.", {"rebuild": admin.index_rebuild}),
    "db": ("The shared PostgreSQL database of several replicas.", {"upgrade": db.upgrade}),
    "keystore": ("Encrypted signing keys for RPC nodes.", {"create": admin.keystore_create}),
    "keys": (
        "API keys: create, list, revoke.",
        {"create": admin.keys_create, "list": admin.keys_list, "revoke": admin.keys_revoke},
    ),
}

for _name, _command in _COMMANDS.items():
    app.command(_name)(_command)
for _name, (_help, _commands) in _GROUPS.items():
    _group = typer.Typer(help=_help, no_args_is_help=True)
    for _sub, _command in _commands.items():
        _group.command(_sub)(_command)
    app.add_typer(_group, name=_name)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
