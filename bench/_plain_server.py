"""The baseline of ``bench.bench_serving``: the same scikit-learn model behind a plain FastAPI
endpoint, with no receipts, no ledger and no durability, as a team would serve it without
provenance: ``python -m bench._plain_server MODEL_FILE MODEL_HASH PORT``.

The model file is the service's own artifact, loaded with :func:`ml.artifacts.load_model`, so
both servers run the same estimator on the same rows; the body and the answer have the shapes
of ``POST /v1/models/{hash}/predict`` without the receipts (``{"rows": [...]}`` in,
``{"predictions": [...]}`` out), validated by pydantic as an idiomatic endpoint would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from ml.artifacts import load_model

__all__ = ["main"]


class PredictIn(BaseModel):
    rows: list[dict[str, float]]


class PredictOut(BaseModel):
    predictions: list[float]


def main(argv: list[str]) -> None:
    model_file, model_hash, port = argv
    model = load_model(Path(model_file).read_bytes(), model_hash)
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict", response_model=PredictOut)
    def predict(body: PredictIn) -> PredictOut:
        return PredictOut(predictions=list(model.predict(body.rows).values))

    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
