"""Predictions (flow 4): run a live model on input rows and issue one receipt per row; and
re-run a receipt's prediction for verification.

The prediction path is the service's hot path, so each row's canonical JSON and hashes are
computed once (:meth:`ReceiptSigner.sign_request` signs a request's receipts with one signature,
format 2), the receipt book stores the texts made here, and the answer is written from those
same texts: nothing is validated or serialised a second time (the route documents the answer
as :class:`~api.schemas.PredictPublic`; ``tests/api/test_receipts_api.py`` holds the text to
that schema).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import TYPE_CHECKING, Any

from api.errors import LimitExceeded, RecordTainted
from api.service._core import Core
from api.service.models import Models
from ledger.errors import RecordIsRevoked
from ledger.formats.receipt_requests import IssuedReceipt
from ledger.index.lineage import first_revoked_ancestor
from ledger.storage.receipt_book import issued_receipts
from ml.hashing import canonical_json, canonical_json_rows, from_hex, to_hex

if TYPE_CHECKING:
    from ml.artifacts import LoadedModel

__all__ = ["Predictions"]

# What a just-issued receipt adds to its fields in the answer (StoredReceipt.to_json, pending).
_PENDING = (
    ',"status":"pending","batch_id":null,"root":null,"leaf":null,"proof":null,'
    '"tx_hash":null,"block_number":null,"error":null}'
)
_FORMAT_1 = ',"format":1,"signed_root":null,"signed_proof":null'
_FLOATS = {float}
_LIVE_KEPT = 256  # models a thread remembers as live (then it starts over)


class Predictions:
    """Predictions from registered models, each with a signed, durable receipt."""

    def __init__(self, core: Core, models: Models) -> None:
        self._core = core
        self._models = models
        # per thread: {model hash as asked: (the index's change token, its indexed hash)}
        self._live = threading.local()

    def live(self, model_hash: str) -> LoadedModel:
        """The model, loaded once from a re-hashed file; revoked or tainted models refused.

        A model found live is not looked up again while the index has not changed (its
        :meth:`~ledger.index.base.EventIndex.change_token`, read before the lookups): its
        revocation, or its inputs' or their ancestors', can only come through the index. The
        lookups were four SQL reads a request, 6% of a 100-row prediction's CPU."""
        core = self._core
        core.catch_up()
        token = core.index.change_token()
        seen: dict[str, tuple[Any, str]] = self._live.__dict__.setdefault("seen", {})
        kept = seen.get(model_hash)
        if token is None or kept is None or kept[0] != token:
            kept = (token, self._live_hash(model_hash))
            # only a model the index holds: one known from this process's own write alone may
            # still leave the chain (a reorganisation) without the index changing
            if token is not None and core.index.kind_of(kept[1]) == "model":
                if len(seen) >= _LIVE_KEPT:
                    seen.clear()
                seen[model_hash] = kept
        indexed_hash = kept[1]
        return core.models_cache.get_or_make(
            indexed_hash,
            lambda: _load_model(core.store.read_bytes(indexed_hash), from_hex(indexed_hash)),
        )

    def _live_hash(self, model_hash: str) -> str:
        """The model's indexed hash, if it is neither revoked nor tainted; else the error."""
        indexed = self._models.indexed(model_hash)
        if indexed.revoked:
            raise RecordIsRevoked(f"model {model_hash} is revoked")
        revoked = first_revoked_ancestor(indexed.datasets, self._core.index.dataset)
        if revoked is not None:
            raise RecordTainted(
                f"model {model_hash} was trained on data derived from revoked dataset {revoked}"
            )
        return indexed.model_hash

    def predict(self, model_hash: str, rows: list[dict[str, Any]]) -> bytes:
        """Run the model on ``rows`` and issue one receipt per row (flow 4); the receipts are
        durable before this returns, and the anchorer batches them on chain. Returns the
        answer, a :class:`~api.schemas.PredictPublic` as JSON."""
        core = self._core
        if len(rows) > core.settings.max_predict_rows:
            raise LimitExceeded(
                f"{len(rows)} rows exceed max_predict_rows = {core.settings.max_predict_rows}",
                limit="max_predict_rows",
            )
        model = self.live(model_hash)
        model_hash = to_hex(model.model_hash)  # normalised: the index lookup is done once
        result = model.predict(rows)  # every row checked: a JSON object of numbers
        outputs = result.receipt_outputs()
        issued, output_texts = self._issue(model.model_hash, rows, outputs)
        core.receipts.add_issued(issued)  # durable before anyone sees them
        core.anchorer.notify(len(issued))
        extra = _PENDING if core.settings.receipt_format == 2 else _FORMAT_1 + _PENDING
        receipts = ",".join(item.body[:-1] + extra for item in issued)
        if output_texts is not None and set(map(type, result.values)) == _FLOATS:
            # a regressor's outputs are its values; json.dumps writes a float as they do
            values = "[" + ",".join(output_texts) + "]"
        else:
            values = json.dumps(list(result.values), allow_nan=False, separators=(",", ":"))
        probabilities = json.dumps(
            result.class_probabilities(), allow_nan=False, separators=(",", ":")
        )
        return (
            f'{{"model_hash":"{model_hash}","predictions":{values},'
            f'"probabilities":{probabilities},"receipts":[{receipts}]}}'
        ).encode()

    def _issue(
        self, model_hash: bytes, rows: list[dict[str, Any]], outputs: list[Any]
    ) -> tuple[list[IssuedReceipt], list[str] | None]:
        """Sign the rows' receipts: one signature over the request (format 2, the default) or
        one per row (format 1, ``receipt_format = 1``). Also returns the outputs' canonical
        JSON texts, when they were made (format 2)."""
        signer = self._core.signer
        if self._core.settings.receipt_format == 1:
            receipts = [
                signer.sign(
                    model_hash=model_hash,
                    input_hash=hashlib.sha256(canonical_json(row)).digest(),
                    output=output,
                )
                for row, output in zip(rows, outputs, strict=True)
            ]
            return issued_receipts(receipts, rows), None
        texts = canonical_json_rows(rows)
        signed = signer.sign_request(
            model_hash=model_hash,
            input_hashes=[hashlib.sha256(text).digest() for text in texts],
            outputs=outputs,
        )
        return signed.issued([text.decode("utf-8") for text in texts]), list(signed.output_texts)

    def reproduce_output(self, model_hash: str, row: dict[str, Any]) -> Any:
        """What the stored model outputs for ``row``, in a receipt's ``output`` form.

        Used to re-run a receipt's prediction; a revoked model still runs here, because an
        auditor may need to reproduce what it said before it was revoked. The stored file is
        re-read (no cache): a re-run reproduces what the store holds now.
        """
        indexed = self._models.indexed(model_hash)
        model = _load_model(self._core.store.read_bytes(indexed.model_hash), indexed.model_hash)
        return model.predict([row]).receipt_outputs()[0]


def _load_model(model_bytes: bytes, model_hash: bytes | str) -> LoadedModel:
    """:func:`ml.artifacts.load_model`, imported with the first model a process loads: it
    brings scikit-learn and skops, over a second of a service's start-up, which a replica that
    never serves a prediction need not pay."""
    from ml.artifacts import load_model

    return load_model(model_bytes, model_hash)
