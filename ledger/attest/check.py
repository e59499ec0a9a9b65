"""An auditor's check of an ``.intoto.jsonl`` file against a node, trusting nothing else.

Checks, in order, each named in the report (``ledger.verification.report``):

1. ``key_binding``: the attestation key is bound to a registrar of this ledger
   (:func:`ledger.attest.key.check_binding`: its digest, the registrar's EIP-712 signature,
   ``REGISTRAR_ROLE`` on chain now);
2. ``signature``: every envelope's DSSE signature verifies with that key, and each holds an
   in-toto Statement v1 with an SLSA Provenance v1 predicate;
3. ``subject``: every statement names the same artifact; with the artifact's file at hand, its
   SHA-256 is the subject's digest (skipped without one);
4. ``registered``: the subject is registered on chain, in the transaction and block the
   statement's chain annotation names, on this chain and contract;
5. ``dependencies``: the statement's ``resolvedDependencies`` are exactly the record's
   registered parents (a derived dataset) or training datasets (a model).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from ledger.attest.intoto import CHAIN_ANNOTATION, PREDICATE_TYPE, open_envelope
from ledger.attest.key import AttestationError, KeyBinding, check_binding
from ledger.records import hash_hex
from ledger.verification.report import Checks, Report

__all__ = ["verify_attestations"]


def verify_attestations(
    envelopes: Sequence[Any],
    binding: KeyBinding,
    facts: Any,
    *,
    artifact: bytes | None = None,
) -> Report:
    """Check ``envelopes`` (one ``.intoto.jsonl`` file's lines) against the ledger ``facts``
    reads (a :class:`~ledger.chain_facts.ChainFacts`); see the module docstring."""
    checks = Checks()
    reader = facts.reader
    snapshot = facts.snapshot()
    # the ledger's generations: a key bound, or a record registered, before an upgrade names an
    # older one, which the contract given reaches through predecessor()
    generations = {g.lower() for g in reader.generations()}
    # 1. The key.
    try:
        registrar = check_binding(
            binding,
            chain_id=reader.chain_id(),
            contract=binding.contract
            if str(binding.contract).lower() in generations
            else reader.address,
            holds_role=snapshot.holds_role,
        )
    except AttestationError as exc:
        checks.add("key_binding", False, str(exc))
        return Report("", "attestation", tuple(checks.items))
    checks.add("key_binding", True, f"the key is bound by registrar {registrar} on chain")
    # 2. The envelopes.
    statements = []
    try:
        if not envelopes:
            raise AttestationError("signature", "the file holds no envelope")
        for envelope in envelopes:
            statement = open_envelope(envelope, binding.public_key_pem)
            if statement.get("predicateType") != PREDICATE_TYPE:
                raise AttestationError("signature", "a statement's predicate is not SLSA v1")
            statements.append(statement)
    except AttestationError as exc:
        checks.add("signature", False, str(exc))
        return Report("", "attestation", tuple(checks.items))
    checks.add("signature", True, f"{len(statements)} envelope(s) signed by the bound key")
    # 3. The subject.
    subjects = {_subject_hash(s) for s in statements}
    subject = next(iter(subjects)) if len(subjects) == 1 else None
    if subject is None:
        checks.add("subject", False, f"the statements name {len(subjects)} different subjects")
        return Report("", "attestation", tuple(checks.items))
    if artifact is None:
        checks.add("subject", None, f"{subject} (no artifact file given to compare)")
    else:
        actual = "0x" + hashlib.sha256(artifact).hexdigest()
        checks.add(
            "subject",
            actual == subject,
            f"the file's SHA-256 is {subject}"
            if actual == subject
            else f"the statement is about {subject}, the file hashes to {actual}",
        )
    # 4. On chain, and 5. its dependencies.
    statement = statements[0]
    chain = statement["subject"][0].get("annotations", {}).get(CHAIN_ANNOTATION, {})
    kind = "ModelRegistered" if _is_training(statement) else "DatasetRegistered"
    event = facts.event(kind, subject, snapshot, claimed=_int(chain.get("block"))).event
    registered = (
        event is not None
        and str(chain.get("transaction", "")).lower() == event.tx_hash.lower()
        and _int(chain.get("chainId")) == reader.chain_id()
        and str(chain.get("contract", "")).lower() in generations
    )
    checks.add(
        "registered",
        registered,
        f"registered in block {event.block_number}, transaction {event.tx_hash}"
        if registered and event is not None
        else "the subject is not registered where its chain annotation says",
    )
    if event is not None:
        on_chain = set(event.datasets if kind == "ModelRegistered" else event.parents)
        claimed = {_hash(d) for d in statement["predicate"]["buildDefinition"].get(
            "resolvedDependencies", []
        )}  # fmt: skip
        checks.add(
            "dependencies",
            claimed == on_chain,
            "the dependencies are the registered ones"
            if claimed == on_chain
            else f"the statement names {sorted(claimed)}, the chain {sorted(on_chain)}",
        )
    return Report(subject, "attestation", tuple(checks.items))


def _subject_hash(statement: Any) -> str | None:
    try:
        return _hash(statement["subject"][0])
    except (KeyError, IndexError, TypeError):
        return None


def _hash(descriptor: Any) -> str:
    try:
        return hash_hex("0x" + str(descriptor["digest"]["sha256"]))
    except (KeyError, TypeError, ValueError):
        return "unreadable"


def _is_training(statement: Any) -> bool:
    build = statement.get("predicate", {}).get("buildDefinition", {})
    return "training" in str(build.get("buildType", ""))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
