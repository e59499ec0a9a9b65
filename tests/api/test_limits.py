"""Every limit is a setting; each is tested at the limit (accepted) and one past it (413 or 422
problem+json naming the limit, and nothing kept)."""

from __future__ import annotations

import json
import random

import pytest

from api.settings import Settings
from tests.api.conftest import assert_problem, authorized_client, train, upload

LIMITS = {
    "max_upload_bytes": 100,
    "max_rows": 5,
    "max_columns": 4,
    "max_field_chars": 10,
    "max_predict_rows": 3,
    "max_json_bytes": 2048,
    "max_json_depth": 8,
    "max_name_chars": 10,
    "max_description_chars": 20,
}


@pytest.fixture
def limited(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", anchor_interval=3600, **LIMITS)
    with authorized_client(settings) as client:
        yield client


def stored(client):
    return sorted(client.app.state.service.core.store.digests())


def csv(columns: int, rows: int, cell: str = "1") -> str:
    header = ",".join(f"c{i}" for i in range(columns))
    return header + "\n" + "".join(",".join([cell] * columns) + "\n" for _ in range(rows))


def refused(response, status, limit):
    body = assert_problem(response, status, "too-large" if status == 413 else "field-too-long")
    assert limit in json.dumps(body)
    return body


def test_upload_bytes(limited):
    rows = "1234567890,123456789\n" * 4
    at, past = f"a,b\n{rows}12345,12345\n", f"a,b\n{rows}123456,12345\n"
    assert (len(at), len(past)) == (100, 101)
    assert upload(limited, at).status_code == 201
    before = stored(limited)
    refused(upload(limited, past), 413, "max_upload_bytes")
    assert stored(limited) == before


def test_rows(limited):
    assert upload(limited, csv(2, 5)).status_code == 201
    before = stored(limited)
    refused(upload(limited, csv(2, 6, "2")), 413, "max_rows")
    assert stored(limited) == before


def test_columns(limited):
    assert upload(limited, csv(4, 2)).status_code == 201
    refused(upload(limited, csv(5, 2)), 413, "max_columns")


def test_field_chars(limited):
    assert upload(limited, csv(2, 2, "1" * 10)).status_code == 201
    refused(upload(limited, csv(2, 2, "2" * 11)), 413, "max_field_chars")


def test_predict_rows(limited):
    dataset = upload(limited, "x1,x2,y\n1,2,3\n2,3,5\n3,5,8\n").json()
    model = train(limited, dataset["content_hash"]).json()["model_hash"]
    rows = [{"x1": 1, "x2": 1}]
    ok = limited.post(f"/v1/models/{model}/predict", json={"rows": rows * 3})
    assert ok.status_code == 200
    counts = limited.app.state.service.core.receipts.counts()
    refused(
        limited.post(f"/v1/models/{model}/predict", json={"rows": rows * 4}),
        413,
        "max_predict_rows",
    )
    assert limited.app.state.service.core.receipts.counts() == counts


def test_json_bytes(limited):
    body = {"steps": [{"step": "drop_duplicates"}]}
    text = json.dumps(body)
    at = text + " " * (2048 - len(text))
    headers = {"content-type": "application/json"}
    path = "/v1/datasets/0x" + "ab" * 32 + "/derive"
    assert limited.post(path, content=at, headers=headers).status_code == 404  # parsed, unknown
    refused(limited.post(path, content=at + " ", headers=headers), 413, "max_json_bytes")


def nested(depth: int) -> dict:
    """A ModelCreate body whose nesting is exactly ``depth``."""
    value: object = 1
    for _ in range(depth - 2):
        value = [value]
    return {"dataset": "0x" + "ab" * 32, "algorithm": "ridge", "target": "y",
            "params": {"alpha": value}}  # fmt: skip


def test_json_depth(limited):
    at = limited.post("/v1/models", json=nested(8))
    assert at.json()["type"].rsplit(":", 1)[-1] != "too-deep"
    body = assert_problem(limited.post("/v1/models", json=nested(9)), 422, "too-deep")
    assert body["limit"] == "max_json_depth"


@pytest.mark.parametrize("path", ["/rpc", "/v1/verify/receipt", "/v1/datasets/0x" + "ab" * 32])
@pytest.mark.parametrize("content_type", ["application/json", None])
def test_a_pathologically_deep_body_is_refused_before_any_parser_sees_it(
    client, path, content_type
):
    """py-evm raises the recursion limit, so ``json.loads`` of 200,000 nested arrays would crash
    the process (a segfault, not an exception): the guard measures depth before parsing."""
    headers = {"content-type": content_type} if content_type else {}
    deep = b"[" * 200_000 + b"]" * 200_000
    body = assert_problem(client.post(path, content=deep, headers=headers), 422, "too-deep")
    assert body["limit"] == "max_json_depth"
    assert client.get("/healthz").status_code == 200  # still alive


def test_a_name_is_never_cut_and_a_key_name_has_the_same_limit(limited):
    long = "k" * 11  # the limited service allows 10
    body = refused(limited.post("/v1/admin/keys", json={"role": "auditor", "name": long}),
                   422, "max_name_chars")  # fmt: skip
    assert "11 characters" in body["detail"]
    created = limited.post("/v1/admin/keys", json={"role": "auditor", "name": "k" * 10})
    assert created.status_code == 201
    assert created.json()["name"] == "k" * 10


@pytest.mark.parametrize(("field", "limit"), [("name", 10), ("description", 20)])
def test_name_and_description_length(limited, field, limit):
    assert upload(limited, csv(2, 1), **{field: "n" * limit}).status_code == 201
    before = stored(limited)
    refused(upload(limited, csv(2, 2), **{field: "n" * (limit + 1)}), 422, f"max_{field}_chars")
    assert stored(limited) == before


def test_a_name_is_never_a_path(limited):
    response = upload(limited, csv(3, 1), name="../../x")
    assert response.status_code == 201
    assert response.json()["name"] == "../../x"
    root = limited.app.state.service.core.store.root
    assert not (root.parent.parent / "x").exists()


def test_training_past_the_memory_limit_is_refused_before_loading(tmp_path):
    """The estimate comes from the registered schema; nothing is trained, nothing is sent."""
    from api.settings import Settings
    from tests.api.conftest import authorized_client, train

    tight = Settings(data_dir=tmp_path / "tight", max_memory_bytes=1024, anchor_interval=3600)
    with authorized_client(tight) as c:
        dataset = upload(c, csv(3, 50)).json()["content_hash"]
        head = c.get("/v1/chain").json()["latest_block"]
        body = assert_problem(train(c, dataset, target="c0"), 413, "too-large")
        assert body["limit"] == "max_memory_bytes"
        assert c.get("/v1/chain").json()["latest_block"] == head


def test_the_quick_depth_measure_is_the_scanners() -> None:
    """json_depth's quick path (no backslash, paired quotes) and the token scanner agree on any
    text, JSON or not."""
    from api.json_depth import _scanned_depth, json_depth

    rng = random.Random(26)
    alphabet = [b"[", b"]", b"{", b"}", b'"', b"a", b"\\", b",", b":", b"1"]
    for _ in range(20_000):
        text = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert json_depth(text) == _scanned_depth(text), text
    assert json_depth(b'{"a": [{"b": "]]]"}, "\\"["]}') == 3
