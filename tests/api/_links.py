"""OpenAPI links between the service's operations, for schemathesis' stateful phase.

The stateful phase chains calls along links: register a dataset, then read, derive, train on,
trace and revoke *that* dataset; train a model, then predict with it; take a receipt from the
prediction and verify it. The service's OpenAPI document declares no links today, and the ones
schemathesis infers by itself join only a few admin operations, so ``with_links`` adds these to
a copy of the document before it is loaded. Links only steer which calls follow which; no check
reads them, so adding them does not loosen what the document promises.

A link the document already declares (same response, same name) is left as it is, so this keeps
working once the app declares its own links.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["LINKS", "with_links"]


def _ref(method: str, path: str) -> str:
    """An ``operationRef`` (a JSON pointer to the operation), stable under operationId renames."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _on(record: str, *targets: tuple[str, str, str, str]) -> dict[str, Any]:
    """Links named ``name`` that pass ``record`` (a runtime expression) as each target's
    ``parameter``; a target is ``(name, method, path, parameter)``."""
    return {
        name: {"operationRef": _ref(method, path), "parameters": {parameter: record}}
        for name, method, path, parameter in targets
    }


_DATASET = "$response.body#/content_hash"
_MODEL = "$response.body#/model_hash"
_RECEIPT = "$response.body#/receipts/0"
_RECORD_TARGETS = (
    ("GetLineage", "get", "/v1/lineage/{record_hash}", "record_hash"),
    ("RevokeIt", "post", "/v1/records/{record_hash}/revoke", "record_hash"),
)
_DATASET_LINKS = {
    **_on(
        _DATASET,
        ("GetDataset", "get", "/v1/datasets/{content_hash}", "content_hash"),
        ("GetContent", "get", "/v1/datasets/{content_hash}/content", "content_hash"),
        ("GetRowProof", "get", "/v1/datasets/{content_hash}/rows/{index}/proof", "content_hash"),
        ("DeriveFromIt", "post", "/v1/datasets/{content_hash}/derive", "content_hash"),
        *_RECORD_TARGETS,
    ),
    "TrainOnIt": {"operationRef": _ref("post", "/v1/models"), "requestBody": {"dataset": _DATASET}},
}
_MODEL_LINKS = _on(
    _MODEL,
    ("GetModel", "get", "/v1/models/{model_hash}", "model_hash"),
    ("GetContent", "get", "/v1/models/{model_hash}/content", "model_hash"),
    ("PredictWithIt", "post", "/v1/models/{model_hash}/predict", "model_hash"),
    ("VerifyIt", "get", "/v1/verify/models/{model_hash}", "model_hash"),
    *_RECORD_TARGETS,
)
_PREDICTION_LINKS = {
    **_on(
        f"{_RECEIPT}/receipt_id",
        ("GetReceipt", "get", "/v1/receipts/{receipt_id}", "receipt_id"),
        ("GetBundle", "get", "/v1/receipts/{receipt_id}/bundle", "receipt_id"),
    ),
    "VerifyReceipt": {
        "operationRef": _ref("post", "/v1/verify/receipt"),
        "requestBody": {"receipt": _RECEIPT},
    },
}

# (method, path) -> status -> links
LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("post", "/v1/datasets"): {"201": _DATASET_LINKS, "200": _DATASET_LINKS},
    ("post", "/v1/datasets/{content_hash}/derive"): {"201": _DATASET_LINKS, "200": _DATASET_LINKS},
    ("post", "/v1/models"): {"201": _MODEL_LINKS, "200": _MODEL_LINKS},
    ("post", "/v1/models/{model_hash}/predict"): {"200": _PREDICTION_LINKS},
    ("post", "/v1/admin/keys"): {
        "201": _on(
            "$response.body#/key_id", ("RevokeIt", "delete", "/v1/admin/keys/{key_id}", "key_id")
        )
    },
    ("post", "/v1/admin/registrars"): {
        "200": _on(
            "$response.body#/address", ("GetIt", "get", "/v1/admin/registrars/{address}", "address")
        )
    },
}


def with_links(openapi: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``openapi`` with ``LINKS`` added where the document has none of that name.

    An operation or response the document lacks is skipped (the app may have changed)."""
    document = copy.deepcopy(openapi)
    for (method, path), by_status in LINKS.items():
        operation = document.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        for status, links in by_status.items():
            response = operation.get("responses", {}).get(status)
            if response is None:
                continue
            declared = response.setdefault("links", {})
            for name, link in links.items():
                declared.setdefault(name, copy.deepcopy(link))
    return document
