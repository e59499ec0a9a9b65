"""in-toto Statement v1 with an SLSA Provenance v1 predicate, in a DSSE envelope.

By the book (in-toto/attestation ``spec/v1/statement.md``, ``resource_descriptor.md``,
``bundle.md``; SLSA provenance v1):

* ``subject``: the artifact, its name and ``{"sha256": <hex>}`` (what ``sha256sum`` prints);
* ``predicate.buildDefinition``: ``buildType`` (:data:`DERIVATION_TYPE` or
  :data:`TRAINING_TYPE`), ``externalParameters`` (the cleaning steps, or the algorithm,
  parameters, features, target, split and seed), ``resolvedDependencies`` (the parent or
  training datasets with their ``sha256``);
* ``predicate.runDetails``: ``builder.id`` (the service, :data:`BUILDER_ID`), ``metadata``
  (the registering transaction as ``invocationId``, the block's time as ``finishedOn``),
  ``byproducts`` (the training metadata document with its ``sha256``);
* the chain coordinates in the subject's ``annotations`` under :data:`CHAIN_ANNOTATION`:
  ``chainId``, ``contract``, ``transaction``, ``block``, and ``rowsRoot`` for a dataset.

Envelopes are signed and checked with ``securesystemslib``'s DSSE implementation, one per line
in ``<artifact>.intoto.jsonl`` (the bundle convention).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ledger.attest.key import AttestationError, AttestationKey

__all__ = [
    "BUILDER_ID",
    "CHAIN_ANNOTATION",
    "DERIVATION_TYPE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "TRAINING_TYPE",
    "descriptor",
    "open_envelope",
    "provenance_statement",
    "sign_statement",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILDER_ID = "urn:provenance-ledger:service"
DERIVATION_TYPE = "urn:provenance-ledger:derivation:v1"
TRAINING_TYPE = "urn:provenance-ledger:training:v1"
CHAIN_ANNOTATION = "provenanceLedger"


def descriptor(name: str, digest: str, **annotations: Any) -> dict[str, Any]:
    """A ResourceDescriptor: ``name`` and the ``sha256`` of a ``0x`` hash."""
    item: dict[str, Any] = {"name": name, "digest": {"sha256": digest.removeprefix("0x")}}
    if annotations:
        item["annotations"] = annotations
    return item


def provenance_statement(
    *,
    subject: dict[str, Any],
    build_type: str,
    external_parameters: Mapping[str, Any],
    dependencies: Sequence[dict[str, Any]],
    chain: Mapping[str, Any],
    finished_on: int,
    byproducts: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The in-toto Statement of one artifact's making (see the module docstring)."""
    subject = {
        **subject,
        "annotations": {**subject.get("annotations", {}), CHAIN_ANNOTATION: dict(chain)},
    }
    run_details: dict[str, Any] = {
        "builder": {"id": BUILDER_ID},
        "metadata": {
            "invocationId": chain["transaction"],
            "finishedOn": datetime.fromtimestamp(finished_on, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    if byproducts:
        run_details["byproducts"] = list(byproducts)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [subject],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": dict(external_parameters),
                "resolvedDependencies": list(dependencies),
            },
            "runDetails": run_details,
        },
    }


def sign_statement(statement: Mapping[str, Any], key: AttestationKey) -> dict[str, Any]:
    """The statement in a DSSE envelope signed with ``key`` (as a JSON object)."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner

    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    envelope = Envelope(payload, PAYLOAD_TYPE, {})
    envelope.sign(CryptoSigner(key.private_key))
    return envelope.to_dict()


def open_envelope(envelope: Any, public_key_pem: str) -> dict[str, Any]:
    """The statement inside ``envelope`` once its signature verifies with ``public_key_pem``;
    raises :class:`AttestationError` (``signature``) otherwise."""
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    try:
        parsed = Envelope.from_dict(envelope)
    except Exception as exc:  # securesystemslib raises KeyError, TypeError, ValueError…
        raise AttestationError("signature", f"not a DSSE envelope: {exc!r}") from None
    if parsed.payload_type != PAYLOAD_TYPE:
        raise AttestationError("signature", f"payload type {parsed.payload_type!r}")
    key = SSlibKey.from_crypto(serialization.load_pem_public_key(public_key_pem.encode()))
    try:
        parsed.verify([key], 1)
    except Exception as exc:  # VerificationError, or a malformed signature
        raise AttestationError(
            "signature", f"the envelope's signature does not verify with the key: {exc}"
        ) from None
    try:
        statement = json.loads(parsed.payload)
    except ValueError:
        raise AttestationError("signature", "the signed payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise AttestationError("signature", "the signed payload is not an in-toto Statement v1")
    return statement


def payload_of(envelope: Mapping[str, Any]) -> bytes:
    """The envelope's payload bytes, unchecked (for display)."""
    return base64.b64decode(envelope.get("payload", ""))
