"""Verifying a model by its hash, and a dataset file by its bytes, against the chain.

A model's checks: ``model_registered``, ``model_not_revoked``, ``datasets_before_model``,
``training_data``, ``artifacts`` and, when asked for, ``reproducible`` (retrain and compare).
A dataset file's: ``dataset_registered``, ``dataset_not_revoked``, ``rows_root`` (when a way to
compute it is given) and ``ancestors``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from ledger.records import hash_hex
from ledger.storage.artifacts import ArtifactStore
from ledger.verification.evidence import BlockClaims
from ledger.verification.lineage_checks import (
    artifact_check,
    lineage_check,
    model_facts,
    revocation_check,
)
from ledger.verification.report import Check, Checks, Report
from ledger.verification.shared import as_facts

__all__ = ["verify_dataset_bytes", "verify_model"]


def verify_model(
    model_hash: str,
    chain: Any,
    *,
    store: ArtifactStore | None = None,
    retrain: Callable[[], tuple[bool, str]] | None = None,
) -> Report:
    """Verify a model: registered, not revoked, files match, lineage sound, optionally retrain.

    ``chain`` is a :class:`~ledger.reading.chain_facts.ChainFacts` or a ``LedgerClient``.
    ``retrain`` trains the model again and says whether the result reproduces it, and how (the
    judgement is ``ml``'s: ``ledger`` knows nothing of models)."""
    model_hash = hash_hex(model_hash)
    facts = as_facts(chain)
    checks = Checks()
    model = model_facts(facts, facts.snapshot(), model_hash, BlockClaims())
    checks.extend(model.checks)
    if model.event is not None:
        digests = [("model", model_hash), ("training metadata", model.event.metadata_hash)]
        digests += [(f"dataset {d}", d) for d in model.event.datasets]
        checks.items.append(artifact_check(store, digests))
        if retrain is not None:
            try:
                reproduced, detail = retrain()
            except Exception as exc:  # a finding, whatever training raised
                checks.add("reproducible", False, f"retraining failed: {exc}")
            else:
                checks.add("reproducible", reproduced, detail)
    return Report(model_hash, "model", tuple(checks.items))


def verify_dataset_bytes(
    data: bytes,
    chain: Any,
    *,
    rows_root: Callable[[bytes], str] | None = None,
) -> Report:
    """Is this exact file registered, intact in its row root, and is its lineage sound?"""
    return verify_dataset_file(
        hash_hex(hashlib.sha256(data).digest()),
        chain,
        rows_root=None if rows_root is None else lambda: rows_root(data),
    )


def verify_dataset_file(
    content_hash: str,
    chain: Any,
    *,
    rows_root: Callable[[], str] | None = None,
) -> Report:
    """:func:`verify_dataset_bytes` for a file known by its SHA-256 (``content_hash``), whose
    rows root ``rows_root()`` computes, streaming: a file of any size, in flat memory."""
    facts = as_facts(chain)
    snapshot = facts.snapshot()
    checks = Checks()
    event = facts.event("DatasetRegistered", content_hash, snapshot).event
    if event is None:
        checks.add("dataset_registered", False, f"no dataset {content_hash} on chain")
        return Report(content_hash, "dataset", tuple(checks.items))
    checks.add(
        "dataset_registered",
        True,
        f"registered in block {event.block_number} by {event.registrant} (tx {event.tx_hash})",
    )
    checks.items.append(
        revocation_check(facts, snapshot, "dataset_not_revoked", content_hash, "dataset")
    )
    if rows_root is not None:
        try:
            found = rows_root()
        except Exception as exc:  # a finding: the file no longer parses
            checks.add("rows_root", False, f"cannot compute the rows root: {exc}")
        else:
            checks.add(
                "rows_root",
                found == event.rows_root,
                "rows root matches the chain"
                if found == event.rows_root
                else f"rows root {found}, the chain says {event.rows_root}",
            )
    if event.parents:
        ancestors = lineage_check(facts, snapshot, event.parents, BlockClaims())
        checks.items.append(Check("ancestors", ancestors.ok, ancestors.detail))
    else:
        checks.add("ancestors", None, "raw data: no parents")
    return Report(
        content_hash, "dataset", tuple(checks.items), extra={"record": _event_json(event)}
    )


def _event_json(event: Any) -> dict[str, Any]:
    doc = asdict(event)
    doc["parents"] = list(doc.get("parents", ()))
    return doc
