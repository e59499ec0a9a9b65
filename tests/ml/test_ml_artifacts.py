"""Model files: byte-stable layout, hash check first, allowlist audit before construction."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io
from hypothesis import given, settings
from hypothesis import strategies as st

import ml.artifacts
from ml import errors
from ml._modelfile import ModelHeader, write_model_file
from ml.artifacts import Predictions, load_model
from ml.datasets import parse_dataset
from ml.hashing import canonical_json
from ml.training import TrainedModel, train

DATA = b"a,b,label\n" + b"".join(
    f"{i},{(i * 7) % 5},{['cat', 'dog', 'eel'][i % 3]}\n".encode() for i in range(15)
)


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return train(
        parse_dataset(DATA),
        algorithm="random_forest_classifier",
        target="label",
        params={"n_estimators": 3},
    )


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def rebuild(model_bytes: bytes, edit) -> bytes:  # type: ignore[no-untyped-def]
    """Rewrite a model file's entries through ``edit(name, data) -> data``."""
    source = zipfile.ZipFile(io.BytesIO(model_bytes))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            archive.writestr(info, edit(info.filename, source.read(info.filename)))
    return out.getvalue()


def test_round_trip_predictions(trained: TrainedModel) -> None:
    model = load_model(trained.model_bytes, trained.model_hash)
    assert model.algorithm == "random_forest_classifier"
    assert model.task == "classification"
    assert model.features == ("a", "b") and model.target == "label"
    assert model.classes == ("cat", "dog", "eel")
    assert model.model_hash == trained.model_hash
    rows = [{"a": 1, "b": 2.5}, {"a": 13, "b": True}]
    result = model.predict(rows)
    X = np.array([[1.0, 2.5], [13.0, 1.0]])
    assert result.values == tuple(trained.estimator.predict(X).tolist())
    assert all(isinstance(v, str) for v in result.values)
    assert result.classes == model.classes
    np.testing.assert_array_equal(result.probabilities, trained.estimator.predict_proba(X))
    assert all(sum(p) == pytest.approx(1.0) for p in result.probabilities)


def test_hex_hash_accepted(trained: TrainedModel) -> None:
    assert load_model(trained.model_bytes, "0x" + trained.model_hash.hex()).features == ("a", "b")


def test_file_layout_is_canonical(trained: TrainedModel) -> None:
    archive = zipfile.ZipFile(io.BytesIO(trained.model_bytes))
    names = archive.namelist()
    assert names[:2] == ["provenance.json", "schema.json"]
    assert names[2:] == [f"{i}.npy" for i in range(1, len(names) - 1)]
    for info in archive.infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.compress_type == zipfile.ZIP_STORED
    header = json.loads(archive.read("provenance.json"))
    assert header["features"] == ["a", "b"] and header["algorithm"] == "random_forest_classifier"
    # Re-serialising the same fitted estimator gives the same bytes (skops alone does not).
    again = write_model_file(
        trained.estimator,
        ModelHeader(
            algorithm=header["algorithm"],
            task=header["task"],
            estimator=header["estimator"],
            features=tuple(header["features"]),
            target=header["target"],
        ),
    )
    assert again == trained.model_bytes


def test_hash_mismatch_is_checked_first(trained: TrainedModel, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def explode(*args: object, **kwargs: object) -> None:
        raise AssertionError("read before the hash was checked")

    monkeypatch.setattr(ml.artifacts, "read_model_file", explode)
    with pytest.raises(errors.ModelHashMismatch) as info:
        load_model(trained.model_bytes, sha(b"other"))
    assert info.value.expected == sha(b"other") and info.value.actual == trained.model_hash
    tampered = bytearray(trained.model_bytes)
    tampered[-100] ^= 1
    with pytest.raises(errors.ModelHashMismatch):
        load_model(bytes(tampered), trained.model_hash)


def test_untrusted_type_refused_before_construction(trained: TrainedModel, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def point_at_os_system(name: str, data: bytes) -> bytes:
        if name != "schema.json":
            return data
        schema = json.loads(data)
        schema["__module__"], schema["__class__"] = "os", "system"
        return json.dumps(schema).encode()

    evil = rebuild(trained.model_bytes, point_at_os_system)

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("skops constructed an unaudited file")

    monkeypatch.setattr(skops.io, "loads", must_not_run)
    with pytest.raises(errors.UntrustedModelContent) as info:
        load_model(evil, sha(evil))
    assert "os.system" in info.value.types


def test_untrusted_loader_refused(trained: TrainedModel) -> None:
    def add_function_node(name: str, data: bytes) -> bytes:
        if name != "schema.json":
            return data
        schema = json.loads(data)
        schema["content"]["content"]["sneaky"] = {
            "__class__": "str",
            "__module__": "builtins",
            "__loader__": "FunctionNode",
            "content": {"module_path": "builtins", "function": "eval"},
        }
        return json.dumps(schema).encode()

    evil = rebuild(trained.model_bytes, add_function_node)
    with pytest.raises(errors.UntrustedModelContent, match="FunctionNode"):
        load_model(evil, sha(evil))


def test_header_and_estimator_must_agree(trained: TrainedModel) -> None:
    def claim_other_algorithm(name: str, data: bytes) -> bytes:
        if name != "provenance.json":
            return data
        header = json.loads(data)
        header["algorithm"] = "random_forest_regressor"
        header["task"] = "regression"
        header["estimator"] = "sklearn.ensemble._forest.RandomForestRegressor"
        return json.dumps(header).encode()

    lying = rebuild(trained.model_bytes, claim_other_algorithm)
    with pytest.raises(errors.UntrustedModelContent):  # RandomForestClassifier not allowed
        load_model(lying, sha(lying))

    def unknown_algorithm(name: str, data: bytes) -> bytes:
        if name != "provenance.json":
            return data
        return json.dumps({**json.loads(data), "algorithm": "svm"}).encode()

    odd = rebuild(trained.model_bytes, unknown_algorithm)
    with pytest.raises(errors.InvalidModelFile):
        load_model(odd, sha(odd))


@pytest.mark.parametrize(
    "make",
    [
        lambda good: b"not a zip file",
        lambda good: rebuild(good, lambda n, d: b"{" if n == "provenance.json" else d),
        lambda good: rebuild(good, lambda n, d: b"[]" if n == "provenance.json" else d),
        lambda good: rebuild(
            good,
            lambda n, d: (
                json.dumps({**json.loads(d), "format_version": 9}).encode()
                if n == "provenance.json"
                else d
            ),
        ),
        lambda good: rebuild(
            good,
            lambda n, d: (
                json.dumps({**json.loads(d), "features": []}).encode()
                if n == "provenance.json"
                else d
            ),
        ),
    ],
)
def test_invalid_model_files(trained: TrainedModel, make) -> None:  # type: ignore[no-untyped-def]
    bad = make(trained.model_bytes)
    with pytest.raises(errors.InvalidModelFile):
        load_model(bad, sha(bad))


def test_compressed_or_incomplete_archives_are_refused(trained: TrainedModel) -> None:
    source = zipfile.ZipFile(io.BytesIO(trained.model_bytes))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in source.namelist():
            archive.writestr(name, source.read(name))
    with pytest.raises(errors.InvalidModelFile, match="compressed"):
        load_model(out.getvalue(), sha(out.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", source.read("schema.json"))
    with pytest.raises(errors.InvalidModelFile, match="missing"):
        load_model(out.getvalue(), sha(out.getvalue()))


@pytest.mark.parametrize(
    ("rows", "error", "attrs"),
    [
        ([], errors.InvalidInput, {}),
        ({"a": 1, "b": 2}, errors.InvalidInput, {}),
        ("ab", errors.InvalidInput, {}),
        ([[1, 2]], errors.InvalidInput, {}),
        ([{"a": 1, "b": 2}, {"a": 1}], errors.MissingFeature, {"feature": "b", "row": 1}),
        ([{"a": "1", "b": 2}], errors.NonNumericInput, {"feature": "a", "row": 0}),
        ([{"a": None, "b": 2}], errors.NonNumericInput, {"feature": "a"}),
        ([{"a": float("nan"), "b": 2}], errors.NonNumericInput, {"feature": "a"}),
        ([{"a": 1, "b": float("inf")}], errors.NonNumericInput, {"feature": "b"}),
    ],
)
def test_prediction_input_errors(trained: TrainedModel, rows, error, attrs) -> None:  # type: ignore[no-untyped-def]
    model = load_model(trained.model_bytes, trained.model_hash)
    with pytest.raises(error) as info:
        model.predict(rows)
    assert isinstance(info.value, errors.PredictionError) and isinstance(info.value, ValueError)
    for name, value in attrs.items():
        assert getattr(info.value, name) == value


# --------------------------------------------------------------------------- receipt outputs


def test_receipt_outputs_of_a_classifier(trained: TrainedModel) -> None:
    model = load_model(trained.model_bytes, trained.model_hash)
    result = model.predict([{"a": 1, "b": 2}, {"a": 13, "b": 0}])
    assert result.probabilities is not None and result.classes is not None
    maps = result.class_probabilities()
    # What api/service.py built inline before this method existed, written out independently.
    assert maps == [
        {str(c): p for c, p in zip(result.classes, row, strict=True)}
        for row in result.probabilities
    ]
    assert all(list(m) == ["cat", "dog", "eel"] for m in maps)  # classes order, str keys
    assert result.receipt_outputs() == [
        {"label": value, "probabilities": dict(zip(map(str, result.classes), row, strict=True))}
        for value, row in zip(result.values, result.probabilities, strict=True)
    ]
    # A re-run of one row gives that row's output exactly: the receipt and the check agree.
    [single] = model.predict([{"a": 13, "b": 0}]).receipt_outputs()
    assert canonical_json(single) == canonical_json(result.receipt_outputs()[1])


@pytest.mark.parametrize(
    ("labels", "keys"),
    [(["0", "1"], ["0", "1"]), (["true", "false"], ["False", "True"])],
    ids=["integer-classes", "boolean-classes"],
)
def test_receipt_output_keys_are_str_of_the_class(labels: list[str], keys: list[str]) -> None:
    data = b"x,y\n" + b"".join(f"{i},{labels[i % 2]}\n".encode() for i in range(8))
    fitted = train(parse_dataset(data), algorithm="logistic_regression", target="y", test_size=0)
    result = load_model(fitted.model_bytes, fitted.model_hash).predict([{"x": 3}])
    [output] = result.receipt_outputs()
    assert list(output) == ["label", "probabilities"]
    assert list(output["probabilities"]) == keys
    assert type(output["label"]) is type(result.values[0])
    assert output["label"] in result.classes  # type: ignore[operator]


def test_receipt_outputs_of_a_regressor_are_the_bare_values() -> None:
    data = b"x,y\n1,2\n2,4\n3,6\n"
    fitted = train(parse_dataset(data), algorithm="linear_regression", target="y", test_size=0)
    result = load_model(fitted.model_bytes, fitted.model_hash).predict([{"x": 4}, {"x": 5}])
    assert result.class_probabilities() is None
    assert result.receipt_outputs() == list(result.values)
    assert all(type(v) is float for v in result.receipt_outputs())
    # No probabilities, or no classes: the bare value, as the service has always signed it.
    assert Predictions(values=("a",), classes=None, probabilities=((1.0,),)).receipt_outputs() == [
        "a"
    ]


@pytest.mark.parametrize("value", [4.17e182, -3.5e38, 10**40])
def test_an_input_beyond_float32_is_refused_not_a_crash(value):
    """Trees compute in float32: a finite float64 past its range used to raise a bare
    ValueError deep in scikit-learn (a 500 through the API)."""
    from ml.artifacts import load_model
    from ml.datasets import parse_dataset
    from ml.errors import InvalidInput
    from ml.training import train

    data = parse_dataset(b"x1,x2,y\n1,2,a\n2,3,b\n3,4,a\n4,5,b\n")
    trained = train(data, algorithm="random_forest_classifier", target="y", test_size=0.0)
    model = load_model(trained.model_bytes, trained.model_hash)
    with pytest.raises(InvalidInput, match="float32"):
        model.predict([{"x1": value, "x2": 1}])
    assert model.predict([{"x1": 3.0e38, "x2": 1}]).values  # just inside the range


# --------------------------------------------------------------------------- the input matrix

_cells = st.one_of(
    st.floats(width=64),  # NaN, infinities and past float32's range included
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(-(10**40), 10**40),
    st.booleans(),
    st.none(),
    st.sampled_from(["1.5", b"1"]),
)
_input_rows = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), _cells, min_size=1, max_size=3)
    | st.fixed_dictionaries({"a": st.floats(width=64), "b": st.floats(width=64)}),
    min_size=1,
    max_size=6,
)


def _slow_matrix(model: ml.artifacts.LoadedModel, rows: list[dict[str, object]]) -> object:
    """The value-by-value path alone, as before the float fast path: its matrix or error."""
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ml.artifacts.LoadedModel, "_float_matrix", lambda self, rows: None)
            return model._matrix(rows).tobytes()
    except errors.PredictionError as exc:
        return (type(exc), str(exc))


@settings(max_examples=400, deadline=None, database=None)
@given(rows=_input_rows)
def test_the_float_matrix_is_the_value_by_value_matrix(
    trained: TrainedModel, rows: list[dict[str, object]]
) -> None:
    """Every input gives the same matrix, or the same error, with the fast path as without."""
    model = load_model(trained.model_bytes, trained.model_hash)
    try:
        fast: object = model._matrix(rows).tobytes()
    except errors.PredictionError as exc:
        fast = (type(exc), str(exc))
    assert fast == _slow_matrix(model, rows)


def test_the_usual_rows_take_the_float_matrix(trained: TrainedModel) -> None:
    model = load_model(trained.model_bytes, trained.model_hash)
    rows = [{"b": 2.5, "a": -1e-300}, {"a": 3.4e38, "b": -0.0}]
    X = model._float_matrix(rows)
    assert X is not None and X.tolist() == [[-1e-300, 2.5], [3.4e38, -0.0]]
    for other in ([{"a": 1, "b": 2.0}], [{"a": 1.0}], [{"a": 1.0, "b": 2.0, "c": 3.0}]):
        assert model._float_matrix(other) is None


_PINNED_PROBE = """
import json, sys
from pathlib import Path
from threadpoolctl import threadpool_info
from ml.artifacts import load_model
model = load_model(Path(sys.argv[1]).read_bytes(), sys.argv[2])
before = [pool["num_threads"] for pool in threadpool_info()]
model.predict([{"a": 1, "b": 2.5}])
after = [pool["num_threads"] for pool in threadpool_info()]
print(json.dumps({"before": before, "after": after}))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: a pool has one thread anyway")
def test_a_prediction_leaves_the_native_pools_pinned_to_one_thread(
    trained: TrainedModel, tmp_path: Path
) -> None:
    """Pinned for good, not limited and lifted around each prediction: a lifted limit gave the
    pools their threads back while another request thread was still predicting (the limit is
    process-wide), and cost ~80 us of GIL hand-offs a prediction (``ml/_threads.py``)."""
    model_file = tmp_path / "model.bin"
    model_file.write_bytes(trained.model_bytes)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    probe = subprocess.run(
        [sys.executable, "-c", _PINNED_PROBE, str(model_file), trained.model_hash.hex()],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    pools = json.loads(probe.stdout)
    assert max(pools["before"]) > 1  # the process starts with its pools' own threads
    assert pools["after"] and set(pools["after"]) == {1}
