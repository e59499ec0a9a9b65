"""Issue 19: a model trained on one CPU's kernels verifies when an auditor retrains it on
another's, and a forged model file does not, whatever the kernels.

Every algorithm is trained through the API by a service whose training processes run one
OpenBLAS kernel set (``training_coretype``). Two forgeries are registered beside each honest
model with the honest training metadata: the model file trained on other rows, and the honest
file with one learned value changed by 1%. Then the same data directory is served with each
kernel set in turn, and ``GET /v1/verify/models/{h}?retrain=true`` must call every honest model
``valid`` (``identical`` or ``equivalent within …``, naming both environments) and every forgery
``invalid`` on ``reproducible`` alone.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from api.settings import Settings
from ledger.records import ModelInput
from ml._modelfile import read_model_file, write_model_file
from ml.artifacts import load_model
from ml.datasets import parse_dataset
from ml.hashing import sha256_bytes, to_hex
from ml.training import train
from tests._kernels import KERNELS, kernel_params, runnable
from tests.api.conftest import authorized_client

pytestmark = pytest.mark.slow

# (algorithm, dataset, params): small enough to train in well under a second each.
TRAININGS: list[tuple[str, str, dict[str, Any]]] = [
    ("linear_regression", "diabetes", {}),
    ("ridge", "diabetes", {"alpha": 0.5}),
    ("logistic_regression", "cancer", {"max_iter": 3000}),
    ("mlp_regressor", "diabetes", {"hidden_layer_sizes": [16], "max_iter": 60}),
    ("mlp_classifier", "cancer", {"hidden_layer_sizes": [8], "max_iter": 40}),
    ("random_forest_regressor", "diabetes", {"n_estimators": 5, "max_depth": 4}),
    ("random_forest_classifier", "cancer", {"n_estimators": 5, "max_depth": 4}),
    ("gradient_boosting_classifier", "cancer", {"n_estimators": 5, "max_depth": 2}),
]
# Kernel sets measured to give the same bits as each other on every algorithm here.
SAME_RESULTS = {"SkylakeX": "avx512", "Haswell": "avx2", "Zen": "avx2", "Prescott": "sse3"}
TRAINED_UNDER = next((k for k in ("SkylakeX", "Haswell", "Prescott") if runnable(k)), None)


def _csv(data: np.ndarray, target: np.ndarray) -> bytes:
    out = io.StringIO()
    out.write(",".join([f"f{i}" for i in range(data.shape[1])] + ["target"]) + "\n")
    for row, label in zip(data, target, strict=True):
        out.write(",".join(repr(float(v)) for v in row) + f",{int(label)}\n")
    return out.getvalue().encode()


def _datasets() -> dict[str, bytes]:
    """scikit-learn's bundled diabetes (regression) and breast cancer (binary) data as CSV."""
    diabetes, cancer = load_diabetes(), load_breast_cancer()
    return {
        "diabetes": _csv(diabetes.data, diabetes.target),
        "cancer": _csv(cancer.data, cancer.target),
    }


@dataclass
class Ledger:
    """A data directory with honest models and forgeries, trained under ``TRAINED_UNDER``."""

    data_dir: Path
    honest: dict[str, str]  # algorithm -> model hash
    forged: dict[str, dict[str, str]]  # algorithm -> {"other data"|"altered value": hash}


def _settings(data_dir: Path, kernel: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        anchor_interval=3600,
        training_workers=1,
        training_coretype=kernel,
    )


def _altered(model_bytes: bytes, model_hash: str) -> bytes:
    """The same model file with one learned value moved by 1%."""
    estimator = load_model(model_bytes, model_hash).estimator
    if hasattr(estimator, "coef_"):
        estimator.coef_.flat[0] = estimator.coef_.flat[0] * 1.01 + 1e-3
    elif hasattr(estimator, "coefs_"):
        estimator.coefs_[0].flat[0] = estimator.coefs_[0].flat[0] * 1.01 + 1e-3
    else:  # a forest or boosted trees: one leaf's value of the first tree
        first = np.ravel(estimator.estimators_)[0].tree_
        leaf = int(np.flatnonzero(first.children_left == -1)[0])
        first.value[leaf] = first.value[leaf] * 1.01 + 1e-3
    return write_model_file(estimator, read_model_file(model_bytes).header)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    if TRAINED_UNDER is None:
        pytest.skip("this CPU runs none of the kernel sets under test")
    data_dir = tmp_path_factory.mktemp("kernels") / "data"
    honest: dict[str, str] = {}
    forged: dict[str, dict[str, str]] = {}
    with authorized_client(_settings(data_dir, TRAINED_UNDER)) as client:
        core = client.app.state.service.core  # type: ignore[attr-defined]
        files = _datasets()
        hashes = {
            name: client.post("/v1/datasets", files={"file": (f"{name}.csv", data)}).json()[
                "content_hash"
            ]
            for name, data in files.items()
        }
        for algorithm, dataset, params in TRAININGS:
            body = {"algorithm": algorithm, "target": "target", "params": params, "seed": 3}
            model = client.post("/v1/models", json={**body, "dataset": hashes[dataset]})
            assert model.status_code in (200, 201), model.text
            model_hash, metadata_hash = model.json()["model_hash"], model.json()["metadata_hash"]
            honest[algorithm] = model_hash
            # The same training on the table without its first 40 rows, made off the record.
            lines = files[dataset].split(b"\n")
            other = parse_dataset(b"\n".join([lines[0], *lines[41:]]))
            request = {k: v for k, v in body.items() if k != "algorithm"}
            fakes = {
                "other data": train(other, algorithm=algorithm, **request).model_bytes,
                "altered value": _altered(core.store.read_bytes(model_hash), model_hash),
            }
            forged[algorithm] = {}
            for kind, fake in fakes.items():
                fake_hash = to_hex(sha256_bytes(fake))
                core.store.put_bytes(fake)
                item = ModelInput(
                    fake_hash, datasets=(hashes[dataset],), metadata_hash=metadata_hash
                )
                outcome = core.writes.write_many([item])[0]
                assert not isinstance(outcome, Exception), outcome
                forged[algorithm][kind] = fake_hash
    yield Ledger(data_dir, honest, forged)


def _reproducible(client: Any, model_hash: str) -> tuple[str, dict[str, Any]]:
    response = client.get(f"/v1/verify/models/{model_hash}", params={"retrain": "true"})
    assert response.status_code == 200, response.text
    report = response.json()
    check = next(c for c in report["checks"] if c["name"] == "reproducible")
    return report["verdict"], check


@pytest.mark.parametrize("kernel", kernel_params())
def test_every_algorithm_reproduces_under_every_kernel_and_forgeries_do_not(
    ledger: Ledger, kernel: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(ledger.data_dir, data_dir)  # each kernel's auditor gets its own copy
    with authorized_client(_settings(data_dir, kernel)) as client:
        hows = []
        for algorithm, model_hash in ledger.honest.items():
            verdict, check = _reproducible(client, model_hash)
            assert verdict == "valid" and check["ok"], (algorithm, check)
            how = check["detail"]
            if kernel == TRAINED_UNDER:
                assert how.startswith("identical: "), (algorithm, how)
            else:
                assert how.startswith(("identical: ", "equivalent: ")), (algorithm, how)
            assert "trained on x86_64" in how and "retrained on x86_64" in how, how
            hows.append(how)
        if SAME_RESULTS.get(kernel) != SAME_RESULTS.get(TRAINED_UNDER):
            # Another kernel family: the networks and lbfgs differ in their last bits here.
            assert any(how.startswith("equivalent: equivalent within") for how in hows), hows
        for algorithm, fakes in ledger.forged.items():
            for kind, fake_hash in fakes.items():
                verdict, check = _reproducible(client, fake_hash)
                report = client.get(f"/v1/verify/models/{fake_hash}").json()
                assert report["verdict"] == "valid", report  # every other check passes
                assert verdict == "invalid" and not check["ok"], (algorithm, kind, check)
                assert check["detail"].startswith("different: "), check


def test_the_kernels_under_test_are_those_the_issue_names() -> None:
    assert set(KERNELS) == {"SkylakeX", "Haswell", "Zen", "Prescott"}
