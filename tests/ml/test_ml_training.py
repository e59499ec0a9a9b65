"""Training: the worked example, parameter checks, split rules, metrics and metadata."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ml import errors
from ml.artifacts import load_model
from ml.datasets import parse_dataset
from ml.hashing import canonical_json
from ml.training import (
    ALGORITHMS,
    SERVICE_PARAMS,
    build_estimator,
    library_versions,
    retrain,
    train,
)

SALES = b"x1,x2,y\n100,200,5000\n200,300,6000\n300,400,7000\n"
SMALL = b"a,b,flag,label,num,gap\n" + b"".join(
    f"{i},{(i * 7) % 5},{'true' if i % 3 else 'false'},{'yes' if i % 2 else 'no'},"
    f"{i * 1.5},{'' if i == 4 else i}\n".encode()
    for i in range(12)
)


def test_worked_example_of_the_classic_pipeline() -> None:
    dataset = parse_dataset(SALES)
    trained = train(dataset, algorithm="linear_regression", target="y", test_size=0)
    assert trained.features == ("x1", "x2")
    assert trained.metrics["r2"] == pytest.approx(1.0, abs=1e-12)
    assert trained.metrics["mse"] == pytest.approx(0.0, abs=1e-12)
    metadata = trained.metadata
    assert metadata["evaluated_on"] == "train"
    assert metadata["split"]["train_rows"] == 3
    assert metadata["split"]["test_size"] == 0.0
    model = load_model(trained.model_bytes, trained.model_hash)
    prediction = model.predict([{"x1": 150, "x2": 250}])
    assert prediction.values[0] == pytest.approx(5500.0, rel=1e-9)
    assert prediction.probabilities is None


def test_the_eight_algorithms() -> None:
    assert sorted(ALGORITHMS) == sorted(
        [
            "linear_regression",
            "ridge",
            "logistic_regression",
            "mlp_regressor",
            "mlp_classifier",
            "random_forest_regressor",
            "random_forest_classifier",
            "gradient_boosting_classifier",
        ]
    )
    assert {a.task for a in ALGORITHMS.values()} == {"regression", "classification"}
    with pytest.raises(TypeError):
        ALGORITHMS["new"] = ALGORITHMS["ridge"]  # type: ignore[index]


def test_unknown_algorithm() -> None:
    with pytest.raises(errors.UnknownAlgorithm) as info:
        train(parse_dataset(SALES), algorithm="svm", target="y")
    assert "linear_regression" in str(info.value)


# --------------------------------------------------------------------------- parameters


def test_unknown_parameter() -> None:
    with pytest.raises(errors.UnknownParameter) as info:
        build_estimator("random_forest_classifier", {"n_trees": 5})
    assert info.value.name == "n_trees" and "n_estimators" in info.value.known
    assert isinstance(info.value, errors.TrainingError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("algorithm", "params", "name"),
    [
        ("random_forest_classifier", {"n_estimators": 0}, "n_estimators"),
        ("random_forest_classifier", {"n_estimators": 2.0}, "n_estimators"),
        ("random_forest_classifier", {"n_estimators": True}, "n_estimators"),
        ("random_forest_classifier", {"max_features": "most"}, "max_features"),
        ("logistic_regression", {"C": -1}, "C"),
        ("logistic_regression", {"solver": "nope"}, "solver"),
        ("ridge", {"alpha": float("nan")}, "alpha"),
        ("ridge", {"alpha": {"a": 1}}, "alpha"),
        ("linear_regression", {"fit_intercept": 1}, "fit_intercept"),
        ("mlp_regressor", {"hidden_layer_sizes": "big"}, "hidden_layer_sizes"),
        ("mlp_regressor", {"random_state": 3}, "random_state"),
        ("random_forest_regressor", {"n_jobs": 4}, "n_jobs"),
        ("gradient_boosting_classifier", {"verbose": 1}, "verbose"),
    ],
)
def test_invalid_parameter_values(algorithm: str, params: dict, name: str) -> None:
    with pytest.raises(errors.InvalidParameter) as info:
        build_estimator(algorithm, params)
    assert info.value.name == name
    assert name in str(info.value)


def test_parameter_errors_found_only_by_fit_are_rewrapped() -> None:
    dataset = parse_dataset(SALES)
    with pytest.raises(errors.InvalidParameter) as info:
        train(
            dataset,
            algorithm="mlp_regressor",
            target="y",
            params={"hidden_layer_sizes": [0]},
            test_size=0,
        )
    assert info.value.name == "hidden_layer_sizes"
    binary = parse_dataset(SMALL)
    with pytest.raises(errors.InvalidParameter) as info:
        train(
            binary,
            algorithm="logistic_regression",
            target="label",
            features=["a", "b"],
            params={"solver": "liblinear", "l1_ratio": 0.5},
        )
    assert info.value.name in ("solver", "l1_ratio")


def test_training_failure_not_tied_to_a_parameter() -> None:
    tiny = parse_dataset(b"a,b,y\n1,2,x\n2,3,y\n3,4,x\n4,5,y\n")
    with pytest.raises(errors.TrainingFailed):
        train(tiny, algorithm="mlp_classifier", target="y", params={"early_stopping": True})


def test_params_must_be_an_object() -> None:
    with pytest.raises(errors.InvalidParameter) as info:
        build_estimator("ridge", [("alpha", 1.0)])  # type: ignore[arg-type]
    assert info.value.name == "params"


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "0"])
def test_invalid_seed(seed: object) -> None:
    with pytest.raises(errors.InvalidParameter) as info:
        build_estimator("ridge", {}, seed=seed)  # type: ignore[arg-type]
    assert info.value.name == "seed"


def test_service_parameters_are_forced() -> None:
    estimator = build_estimator("random_forest_classifier", {"n_estimators": 3}, seed=42)
    assert estimator.random_state == 42 and estimator.n_jobs is None and estimator.verbose == 0
    assert set(SERVICE_PARAMS) == {"random_state", "n_jobs", "verbose"}
    # Arrays from JSON become tuples: [4] and (4,) are the same model.
    assert build_estimator("mlp_regressor", {"hidden_layer_sizes": [4, 2]}).hidden_layer_sizes == (
        4,
        2,
    )


# --------------------------------------------------------------------------- data checks


@pytest.mark.parametrize("test_size", [1, 1.0, -0.1, True, "0.2", float("nan")])
def test_invalid_test_size(test_size: object) -> None:
    with pytest.raises(errors.InvalidSplit):
        train(parse_dataset(SALES), algorithm="ridge", target="y", test_size=test_size)  # type: ignore[arg-type]


def test_split_too_small() -> None:
    with pytest.raises(errors.InvalidSplit):
        train(parse_dataset(b"x,y\n1,2\n"), algorithm="ridge", target="y", test_size=0.5)


def test_target_checks() -> None:
    dataset = parse_dataset(SMALL)
    with pytest.raises(errors.InvalidTarget, match="numeric target"):
        train(dataset, algorithm="ridge", target="label", features=["a"])
    with pytest.raises(errors.InvalidTarget, match="float column"):
        train(dataset, algorithm="logistic_regression", target="num", features=["a"])
    single = parse_dataset(b"a,y\n1,x\n2,x\n3,x\n")
    with pytest.raises(errors.InvalidTarget, match="single class"):
        train(single, algorithm="logistic_regression", target="y", test_size=0)
    # With seed 5 the only "z" row is the held-out one, so training sees a single class.
    skewed = parse_dataset(b"a,y\n1,x\n2,x\n3,x\n4,x\n5,z\n")
    with pytest.raises(errors.InvalidTarget, match="only one class"):
        train(skewed, algorithm="logistic_regression", target="y", test_size=0.2, seed=5)


def test_column_checks_reach_training() -> None:
    dataset = parse_dataset(SMALL)
    with pytest.raises(errors.MissingValues):
        train(dataset, algorithm="ridge", target="num", features=["a", "gap"])
    with pytest.raises(errors.NonNumericColumn):
        train(dataset, algorithm="ridge", target="num", features=["a", "label"])
    with pytest.raises(errors.UnknownColumn):
        train(dataset, algorithm="ridge", target="nope")


# --------------------------------------------------------------------------- outputs


def test_binary_metrics_match_sklearn_with_string_labels_and_boolean_feature() -> None:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    dataset = parse_dataset(SMALL)
    trained = train(
        dataset,
        algorithm="logistic_regression",
        target="label",
        features=["a", "b", "flag"],
        test_size=0.5,
        seed=3,
    )
    X = dataset.numeric_array(["a", "b", "flag"])
    y = np.asarray(dataset.values("label"))
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=3)
    direct = LogisticRegression(random_state=3).fit(X_tr, y_tr)
    predicted = direct.predict(X_te)
    assert trained.metrics == {
        "accuracy": accuracy_score(y_te, predicted),
        "f1": f1_score(y_te, predicted, pos_label="yes"),
        "roc_auc": roc_auc_score(y_te, direct.predict_proba(X_te)[:, 1]),
    }
    assert trained.metadata["classes"] == ["no", "yes"]
    assert trained.metadata["f1_average"] == "binary"
    assert trained.metadata["split"]["test_rows"] == 6


def test_boolean_target_classification() -> None:
    dataset = parse_dataset(SMALL)
    trained = train(
        dataset,
        algorithm="random_forest_classifier",
        target="flag",
        features=["a", "b"],
        params={"n_estimators": 3},
        test_size=0,
    )
    assert trained.metadata["classes"] == [False, True]
    model = load_model(trained.model_bytes, trained.model_hash)
    assert model.classes == (False, True)
    assert model.predict([{"a": 1, "b": 2}]).values[0] in (False, True)


def test_metadata_document() -> None:
    dataset = parse_dataset(SMALL)
    trained = train(
        dataset,
        algorithm="mlp_classifier",
        target="label",
        features=["a", "b"],
        params={"hidden_layer_sizes": [3], "max_iter": 2},
        seed=7,
    )
    metadata = trained.metadata
    assert trained.metadata_bytes == canonical_json(metadata)
    assert trained.metadata_hash == hashlib.sha256(trained.metadata_bytes).digest()
    assert trained.model_hash == hashlib.sha256(trained.model_bytes).digest()
    assert trained.model_hash.hex() not in trained.metadata_bytes.decode()  # not circular
    assert metadata["datasets"] == [
        {
            "content_hash": "0x" + dataset.content_hash.hex(),
            "schema_hash": "0x" + dataset.schema_hash.hex(),
            "row_count": 12,
        }
    ]
    assert trained.dataset_hashes == (dataset.content_hash,)
    assert metadata["algorithm"] == "mlp_classifier" and metadata["task"] == "classification"
    assert metadata["features"] == ["a", "b"] and metadata["target"] == "label"
    # Every effective parameter of the estimator, JSON-ified.
    effective = trained.estimator.get_params(deep=False)
    assert set(metadata["params"]) == set(effective)
    assert metadata["params"]["hidden_layer_sizes"] == [3]
    assert metadata["params"]["random_state"] == 7
    assert metadata["split"] == {
        "method": "sklearn.model_selection.train_test_split",
        "shuffle": True,
        "stratify": False,
        "seed": 7,
        "test_size": 0.2,
        "train_rows": 9,
        "test_rows": 3,
    }
    assert metadata["evaluated_on"] == "test"
    assert set(metadata["metrics"]) == {"accuracy", "f1", "roc_auc"}
    assert metadata["versions"] == library_versions()
    assert set(metadata["versions"]) >= {"python", "scikit-learn", "numpy"}
    assert any("ConvergenceWarning" in w for w in metadata["warnings"])
    assert json.loads(trained.metadata_bytes) == metadata


def test_same_inputs_same_hashes_in_process(small_params: dict) -> None:
    dataset = parse_dataset(SMALL)
    kwargs = dict(
        algorithm="random_forest_classifier",
        target="label",
        features=["a", "b", "num"],
        params=small_params["random_forest_classifier"],
    )
    first, second = train(dataset, **kwargs), train(dataset, **kwargs)
    assert first.model_bytes == second.model_bytes
    assert first.metadata_bytes == second.metadata_bytes
    other_seed = train(dataset, seed=1, **kwargs)
    assert other_seed.model_hash != first.model_hash
    assert other_seed.metadata_hash != first.metadata_hash
    more_trees = train(dataset, **{**kwargs, "params": {"n_estimators": 6}})
    assert more_trees.model_hash != first.model_hash


def test_undefined_metric_is_null() -> None:
    dataset = parse_dataset(b"x,y\n1,2\n2,4\n3,6.5\n4,8\n5,10\n")
    trained = train(dataset, algorithm="ridge", target="y", test_size=0.2)
    assert trained.metadata["split"]["test_rows"] == 1
    assert trained.metrics["r2"] is None  # R² of a single row is undefined
    assert trained.metadata["metrics"]["r2"] is None
    assert trained.metrics["mse"] is not None


# --------------------------------------------------------------------------- retrain


@pytest.mark.parametrize(
    ("algorithm", "request_"),
    [
        ("ridge", {"target": "num", "features": ["a", "b"], "params": {"alpha": 0.5}}),
        (
            "random_forest_classifier",
            {
                "target": "label",
                "features": ["a", "b", "num"],
                "params": {"n_estimators": 4, "max_depth": 3},
                "seed": 7,
            },
        ),
        ("logistic_regression", {"target": "flag", "features": ["num"], "test_size": 0}),
        ("linear_regression", {"target": "a", "features": ["b"], "test_size": 0.5, "seed": 2}),
    ],
)
def test_retrain_from_metadata_gives_the_same_model(algorithm: str, request_: dict) -> None:
    dataset = parse_dataset(SMALL)
    original = train(dataset, algorithm=algorithm, **request_)
    again = retrain(parse_dataset(SMALL), json.loads(original.metadata_bytes))
    assert again.model_hash == original.model_hash
    assert again.metadata_hash == original.metadata_hash
    # The same request with another seed is another model: the seed really is read back.
    reseeded = {**original.metadata, "split": {**original.metadata["split"], "seed": 99}}
    if algorithm == "random_forest_classifier":
        assert retrain(dataset, reseeded).model_hash != original.model_hash


def test_retrain_uses_the_requested_not_the_effective_params() -> None:
    dataset = parse_dataset(SMALL)
    original = train(
        dataset, algorithm="ridge", target="num", features=["a", "b"], params={"alpha": 2.0}
    )
    metadata = original.metadata
    assert metadata["params"]["alpha"] == 2.0 and metadata["requested_params"] == {"alpha": 2.0}
    metadata["params"]["alpha"] = 9.0  # ignored: only the request is replayed
    assert retrain(dataset, metadata).model_hash == original.model_hash
    metadata["requested_params"] = {"alpha": 9.0}
    assert retrain(dataset, metadata).model_hash != original.model_hash


def test_metadata_without_requested_params_retrains_with_none() -> None:
    dataset = parse_dataset(SMALL)
    original = train(dataset, algorithm="ridge", target="num", features=["a", "b"])
    older = {k: v for k, v in original.metadata.items() if k != "requested_params"}
    assert retrain(dataset, older).model_hash == original.model_hash


def test_retrain_refuses_what_it_cannot_replay() -> None:
    dataset = parse_dataset(SMALL)
    metadata = train(dataset, algorithm="ridge", target="num", features=["a", "b"]).metadata
    other = parse_dataset(SMALL + b"99,1,true,no,2.5,3\n")
    with pytest.raises(errors.InvalidMetadata, match="trained on dataset 0x"):
        retrain(other, metadata)
    for broken, fragment in [
        ({**metadata, "format": "something/else"}, "not a training-metadata document"),
        ({**metadata, "format_version": 99}, "not a training-metadata document"),
        ({k: v for k, v in metadata.items() if k != "target"}, "has no target"),
        ({**metadata, "split": {"seed": 0}}, "has no split.test_size"),
        ({**metadata, "datasets": []}, "has no datasets.0.content_hash"),
        ({**metadata, "datasets": [{"content_hash": "zz"}]}, "trained on dataset zz"),
    ]:
        with pytest.raises(errors.InvalidMetadata, match=fragment) as info:
            retrain(dataset, broken)
        assert isinstance(info.value, errors.TrainingError)
    with pytest.raises(errors.InvalidMetadata):
        retrain(dataset, [metadata])  # type: ignore[arg-type]
    with pytest.raises(errors.UnknownAlgorithm):  # a bad value is train's to refuse
        retrain(dataset, {**metadata, "algorithm": "quantum_forest"})


def test_a_test_split_with_a_class_unseen_in_training_is_scored_as_multiclass():
    """Found by the API fuzzer: f1 with average='binary' raised on such a split (a 500)."""
    from ml.datasets import parse_dataset
    from ml.training import train

    rows = "\n".join(f"{i},{i % 2}" for i in range(20)) + "\n20,2"  # one row of class 2
    trained = train(parse_dataset(f"x,y\n{rows}\n".encode()), algorithm="logistic_regression",
                    target="y", test_size=0.5, seed=0)  # fmt: skip
    assert trained.metadata["classes"] == [0, 1]  # seed 0 puts the class-2 row in the test part
    assert trained.metadata["f1_average"] == "macro"
    assert "roc_auc" not in trained.metadata["metrics"]
