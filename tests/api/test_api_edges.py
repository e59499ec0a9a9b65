"""Edge cases a demanding user meets: derivations that change nothing or collide with other
lineage, predictions from tainted models, streamed bodies past their limit."""

from __future__ import annotations

from api.settings import MiB, Settings
from tests.api.conftest import SALES_CSV, assert_problem, authorized_client, train, upload


def derive(client, parent, steps):
    return client.post(f"/v1/datasets/{parent}/derive", json={"steps": steps})


def test_a_derivation_that_changes_nothing_records_nothing(client):
    parent = upload(client).json()["content_hash"]  # no gaps, written as the service writes
    head = client.get("/v1/chain").json()["latest_block"]
    response = derive(client, parent, [{"step": "drop_missing"}])
    assert_problem(response, 409, "derivation-unchanged")
    assert client.get("/v1/chain").json()["latest_block"] == head


def test_a_derivation_whose_bytes_exist_with_other_lineage_is_409(client):
    first = upload(client, SALES_CSV + "300,400,7000\n").json()["content_hash"]
    second = upload(client, SALES_CSV + "200,300,6000\n").json()["content_hash"]
    made = derive(client, first, [{"step": "drop_duplicates"}])
    assert made.status_code == 201
    again = derive(client, first, [{"step": "drop_duplicates"}])
    assert again.status_code == 200 and again.json() == made.json()  # a retry is harmless
    collision = derive(client, second, [{"step": "drop_duplicates"}])
    body = assert_problem(collision, 409, "already-registered")
    assert made.json()["content_hash"] in body["detail"]


def test_a_model_trained_on_revoked_data_no_longer_predicts(client):
    raw = upload(client, SALES_CSV + "300,400,7000\n").json()["content_hash"]
    clean = derive(client, raw, [{"step": "drop_duplicates"}]).json()["content_hash"]
    model = train(client, clean).json()["model_hash"]
    rows = {"rows": [{"x1": 1, "x2": 2}]}
    assert client.post(f"/v1/models/{model}/predict", json=rows).status_code == 200
    client.post(f"/v1/records/{raw}/revoke", json={"reason": "consent withdrawn"})
    before = client.app.state.service.core.receipts.counts()
    body = assert_problem(client.post(f"/v1/models/{model}/predict", json=rows), 409,
                          "record-tainted")  # fmt: skip
    assert raw in body["detail"]
    assert client.app.state.service.core.receipts.counts() == before


def test_a_streamed_upload_past_the_limit_names_the_limit(tmp_path):
    # A limit of its own, so the stream is 3 MiB: past the 4 GiB default it took a CPU minute.
    settings = Settings(data_dir=tmp_path / "data", anchor_interval=3600, max_upload_bytes=MiB)
    limit = settings.max_upload_bytes

    def chunks():
        boundary = b"--b\r\n"
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="x.csv"\r\n\r\n'
        for _ in range(limit // 65536 + 32):
            yield b"1" * 65536

    with authorized_client(settings) as client:
        response = client.post(
            "/v1/datasets",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
    body = assert_problem(response, 413, "too-large")
    assert body["limit"] == "max_upload_bytes"
    assert str(limit) in body["detail"]


def test_a_receipt_with_an_unencodable_value_is_422(client):
    response = client.post(
        "/v1/verify/receipt",
        json={"receipt": {"receipt_id": "0x" + "00" * 32}, "input": {"x": 1}, "rerun": False},
    )
    assert_problem(response, 422, "malformed-receipt")
