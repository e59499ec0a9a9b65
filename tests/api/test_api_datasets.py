"""Datasets over HTTP: register (upload), list, read, download, row proofs, derive.

Every write is checked for what it leaves behind: a duplicate or a refused upload must send no
transaction (the chain's head does not move) and store nothing (the artifact store is unchanged).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from eth_abi import encode
from eth_utils import keccak
from fastapi.testclient import TestClient

from api.settings import Settings
from ledger.formats.merkle import verify_proof
from ml.datasets import parse_dataset
from ml.hashing import to_hex
from ml.transforms import TransformSpec
from tests.api.conftest import SALES_CSV, assert_problem, authorized_client, upload

UNKNOWN = "0x" + "ab" * 32
RAW_CSV = SALES_CSV + "300,400,7000\n250,,6500\n"  # one duplicate row, one missing value
CLEAN_STEPS = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]
FILTER = {"step": "filter_rows", "column": "x1"}


def head(client: TestClient) -> int:
    return client.get("/v1/chain").json()["latest_block"]


def stored_files(settings: Settings) -> list[str]:
    """Every file under the artifact store, staging area included."""
    root = settings.data_dir / "artifacts"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def registered(client: TestClient, csv: str = SALES_CSV, **form: str) -> dict[str, Any]:
    response = upload(client, csv, **form)
    assert response.status_code == 201, response.text
    return response.json()


class Shared(NamedTuple):
    client: TestClient
    settings: Settings
    raw: dict[str, Any]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """One service, holding one dataset, for the tests of refused requests: each checks that it
    changed nothing, so they need no fresh chain of their own."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("refusals") / "data", anchor_interval=3600)
    with authorized_client(settings) as client:
        yield Shared(client, settings, registered(client, RAW_CSV))


# -- POST /v1/datasets --------------------------------------------------------------------------


def test_register_answers_the_record_with_hashes_and_chain_coordinates(
    client: TestClient,
) -> None:
    before = head(client)
    response = upload(client, SALES_CSV, name="sales", description="three rows")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["content_hash"] == "0x" + hashlib.sha256(SALES_CSV.encode()).hexdigest()
    assert body["row_count"] == 3
    assert body["columns"] == [
        {"name": "x1", "type": "integer"},
        {"name": "x2", "type": "integer"},
        {"name": "y", "type": "integer"},
    ]
    assert body["parents"] == []
    assert body["transform_hash"] is None and body["transform"] is None
    assert body["name"] == "sales" and body["description"] == "three rows"
    assert body["size"] == len(SALES_CSV)
    assert body["revoked"] is False and body["revocation"] is None
    assert body["block_number"] == before + 1 == head(client)
    chain = client.get("/v1/chain").json()
    assert body["registrant"] == chain["registrar"]
    for key in ("rows_root", "schema_hash", "metadata_hash", "tx_hash"):
        assert body[key].startswith("0x") and len(body[key]) == 66, key
    assert body["registered_at"] > 0
    # the rows root is the one the service computes from the file (and the chain holds)
    assert (
        body["rows_root"] == client.get(f"/v1/datasets/{body['content_hash']}").json()["rows_root"]
    )


def test_reupload_of_the_same_bytes_answers_200_and_sends_nothing(
    client: TestClient, settings: Settings
) -> None:
    first = registered(client, name="original")
    files, block = stored_files(settings), head(client)
    again = upload(client, SALES_CSV, name="another name")
    assert again.status_code == 200, again.text
    assert again.json() == first  # the existing record, name included
    assert head(client) == block
    assert stored_files(settings) == files  # no staged copy left behind either


@pytest.mark.parametrize(
    ("csv", "problem"),
    [
        (b"", "empty-file"),
        (b"a,b\n1,2\n3\n", "ragged-row"),
        (b"a,a\n1,2\n", "duplicate-columns"),
        (b"a,b\n\xff\xfe,1\n", "undecodable-text"),
        (b"1,2\n3,4\n", "no-header"),
        (b"a,b\n", "no-rows"),
        (b"a,b\n1,\x002\n", "malformed-csv"),
        (b"a,\n1,2\n", "invalid-column-name"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_invalid_csv_is_refused_with_its_type_and_nothing_is_kept(
    shared: Shared, csv: bytes, problem: str
) -> None:
    client, settings = shared.client, shared.settings
    files, block = stored_files(settings), head(client)
    body = assert_problem(upload(client, csv), 422, problem)
    assert body["title"] == "Unprocessable Entity"
    assert body["detail"]
    assert stored_files(settings) == files
    assert head(client) == block
    assert client.get("/v1/datasets").json()["count"] == 1


def test_register_without_a_file_is_invalid(client: TestClient) -> None:
    body = assert_problem(client.post("/v1/datasets", data={"name": "x"}), 422, "invalid-request")
    assert body["errors"][0]["loc"] == ["body", "file"]


def test_overlong_name_is_refused_before_anything_is_stored(
    client: TestClient, settings: Settings
) -> None:
    files = stored_files(settings)
    body = assert_problem(upload(client, name="n" * 201), 422, "field-too-long")
    assert body["limit"] == "max_name_chars"
    assert stored_files(settings) == files
    assert client.get("/v1/datasets").json()["count"] == 0


class TestSmallLimits:
    """A service with tiny upload limits (the ``client`` fixture built on these settings)."""

    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return Settings(
            data_dir=tmp_path / "small", anchor_interval=3600, max_upload_bytes=200, max_rows=4
        )

    def test_upload_past_max_upload_bytes_is_413_and_nothing_is_kept(
        self, client: TestClient, settings: Settings
    ) -> None:
        files, block = stored_files(settings), head(client)
        csv = "a,b\n" + "1,2\n" * 60  # 244 bytes
        body = assert_problem(upload(client, csv), 413, "too-large")
        assert body["limit"] == "max_upload_bytes"
        assert stored_files(settings) == files
        assert head(client) == block

    def test_upload_past_max_rows_is_413_and_nothing_is_kept(
        self, client: TestClient, settings: Settings
    ) -> None:
        files = stored_files(settings)
        body = assert_problem(upload(client, "a,b\n" + "1,2\n" * 5), 413, "too-large")
        assert body["limit"] == "max_rows"
        assert stored_files(settings) == files
        assert upload(client, "a,b\n" + "1,2\n" * 4).status_code == 201  # the limit itself is fine

    def test_declared_body_past_the_limit_is_refused_before_it_is_read(
        self, client: TestClient
    ) -> None:
        response = client.post(
            "/v1/datasets",
            content=b"x" * 10,
            headers={
                "content-type": "multipart/form-data; boundary=B",
                "content-length": "9" * 12,
            },
        )
        assert_problem(response, 413, "too-large")


# -- GET /v1/datasets ---------------------------------------------------------------------------


def test_list_is_paged_newest_first(client: TestClient) -> None:
    hashes = [registered(client, f"a,b\n{i},{i + 1}\n")["content_hash"] for i in range(5)]
    everything = client.get("/v1/datasets").json()
    assert everything["count"] == 5
    assert [d["content_hash"] for d in everything["data"]] == hashes[::-1]
    page = client.get("/v1/datasets", params={"offset": 1, "limit": 2}).json()
    assert page["count"] == 5
    assert [d["content_hash"] for d in page["data"]] == hashes[::-1][1:3]
    past_the_end = client.get("/v1/datasets", params={"offset": 10}).json()
    assert past_the_end == {"data": [], "count": 5}
    # list items are the same records the single reads answer
    assert everything["data"][0] == client.get(f"/v1/datasets/{hashes[-1]}").json()


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "many"}]
)
def test_list_rejects_bad_paging(shared: Shared, params: dict[str, Any]) -> None:
    body = assert_problem(shared.client.get("/v1/datasets", params=params), 422, "invalid-request")
    assert body["errors"][0]["loc"][0] == "query"


def test_list_of_an_empty_ledger(client: TestClient) -> None:
    assert client.get("/v1/datasets").json() == {"data": [], "count": 0}


# -- GET /v1/datasets/{hash} --------------------------------------------------------------------


def test_read_by_hash_in_any_case(client: TestClient) -> None:
    record = registered(client)
    upper = "0x" + record["content_hash"][2:].upper()
    assert client.get(f"/v1/datasets/{upper}").json() == record


def test_unknown_dataset_is_404(client: TestClient) -> None:
    body = assert_problem(client.get(f"/v1/datasets/{UNKNOWN}"), 404, "unknown-dataset")
    assert UNKNOWN in body["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/datasets/0x1234",
        "/v1/datasets/" + "ab" * 32,  # no 0x
        "/v1/datasets/0x" + "zz" * 32,
        "/v1/datasets/0x" + "ab" * 33,
        "/v1/datasets/0x1234/content",
        "/v1/datasets/0x1234/rows/0/proof",
    ],
)
def test_malformed_hash_in_a_path_is_422(shared: Shared, path: str) -> None:
    body = assert_problem(shared.client.get(path), 422, "invalid-request")
    assert body["errors"][0]["loc"] == ["path", "content_hash"]


def test_a_model_hash_is_not_a_dataset(client: TestClient) -> None:
    dataset = registered(client)["content_hash"]
    model = client.post(
        "/v1/models",
        json={"dataset": dataset, "algorithm": "linear_regression", "target": "y", "test_size": 0},
    ).json()["model_hash"]
    assert_problem(client.get(f"/v1/datasets/{model}"), 404, "unknown-dataset")


# -- GET /v1/datasets/{hash}/content ------------------------------------------------------------


def test_content_is_the_exact_file(client: TestClient) -> None:
    csv = 'name,score\r\n"Smith, J",1.5\r\nLee,2\r\n'  # CRLF and quoting survive untouched
    record = registered(client, csv)
    response = client.get(f"/v1/datasets/{record['content_hash']}/content")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content == csv.encode()
    assert "0x" + hashlib.sha256(response.content).hexdigest() == record["content_hash"]


def test_content_of_an_unknown_dataset_is_404(client: TestClient) -> None:
    assert_problem(client.get(f"/v1/datasets/{UNKNOWN}/content"), 404, "unknown-dataset")


def test_content_altered_on_disk_is_refused_not_served(
    client: TestClient, settings: Settings
) -> None:
    record = registered(client)
    digest = record["content_hash"][2:]
    path = settings.data_dir / "artifacts" / "sha256" / digest[:2] / digest[2:]
    path.write_bytes(SALES_CSV.replace("5000", "5001").encode())
    body = assert_problem(
        client.get(f"/v1/datasets/{record['content_hash']}/content"), 500, "artifact-corrupted"
    )
    assert body["expected"] == record["content_hash"]
    assert "Smith" not in str(body) and "5001" not in str(body)


# -- GET /v1/datasets/{hash}/rows/{i}/proof -----------------------------------------------------


def _standard_leaf(index: int, row_digest: str) -> str:
    """OpenZeppelin StandardMerkleTree leaf of ``[index, row_digest]``, computed from scratch."""
    encoded = encode(["uint256", "bytes32"], [index, bytes.fromhex(row_digest[2:])])
    return "0x" + keccak(keccak(encoded)).hex()


def test_every_row_proof_verifies_against_the_registered_rows_root(client: TestClient) -> None:
    csv = "a,b,label\n" + "".join(f"{i},{i * 0.5},r{i}\n" for i in range(7))
    record = registered(client, csv)
    content_hash = record["content_hash"]
    parsed = parse_dataset(client.get(f"/v1/datasets/{content_hash}/content").content)
    proofs = []
    for i in range(record["row_count"]):
        response = client.get(f"/v1/datasets/{content_hash}/rows/{i}/proof")
        assert response.status_code == 200, response.text
        proof = response.json()
        assert proof["dataset"] == content_hash and proof["index"] == i
        assert proof["root"] == record["rows_root"]
        assert proof["leaf_encoding"] == ["uint256", "bytes32"]
        assert proof["row"] == [i, i * 0.5, f"r{i}"]
        assert proof["row_digest"] == "0x" + parsed.row_digests()[i].hex()
        assert proof["leaf"] == _standard_leaf(i, proof["row_digest"])
        assert verify_proof(record["rows_root"], proof["leaf"], proof["proof"])
        proofs.append(proof)
    # a proof is for its own leaf only
    assert not verify_proof(record["rows_root"], proofs[0]["leaf"], proofs[1]["proof"])
    assert not verify_proof(
        record["rows_root"], _standard_leaf(0, proofs[1]["row_digest"]), proofs[0]["proof"]
    )


def test_row_proof_out_of_range_is_404(client: TestClient) -> None:
    record = registered(client)
    body = assert_problem(
        client.get(f"/v1/datasets/{record['content_hash']}/rows/3/proof"), 404, "unknown-row"
    )
    assert "0..2" in body["detail"]
    assert_problem(
        client.get(f"/v1/datasets/{record['content_hash']}/rows/{10**30}/proof"),
        404,
        "unknown-row",
    )


@pytest.mark.parametrize("index", ["-1", "one", "1.5"])
def test_row_proof_with_a_bad_index_is_422(shared: Shared, index: str) -> None:
    body = assert_problem(
        shared.client.get(f"/v1/datasets/{shared.raw['content_hash']}/rows/{index}/proof"),
        422,
        "invalid-request",
    )
    assert body["errors"][0]["loc"] == ["path", "index"]


def test_row_proof_of_an_unknown_dataset_is_404(client: TestClient) -> None:
    assert_problem(client.get(f"/v1/datasets/{UNKNOWN}/rows/0/proof"), 404, "unknown-dataset")


# -- POST /v1/datasets/{hash}/derive ------------------------------------------------------------


def test_derive_registers_the_cleaned_dataset_with_its_lineage(client: TestClient) -> None:
    raw = registered(client, RAW_CSV)
    block = head(client)
    response = client.post(
        f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": CLEAN_STEPS}
    )
    assert response.status_code == 201, response.text
    clean = response.json()
    assert clean["parents"] == [raw["content_hash"]]
    assert clean["row_count"] == 3
    # the transform is stored as its canonical spec, whose hash is the one on chain
    spec = TransformSpec.from_json({"steps": CLEAN_STEPS})
    assert clean["transform_hash"] == to_hex(spec.hash)
    assert to_hex(TransformSpec.from_json(clean["transform"]).hash) == clean["transform_hash"]
    assert clean["transform_hash"].startswith("0x") and len(clean["transform_hash"]) == 66
    assert clean["block_number"] == block + 1 == head(client)
    assert clean["columns"] == raw["columns"]
    content = client.get(f"/v1/datasets/{clean['content_hash']}/content").content
    assert "0x" + hashlib.sha256(content).hexdigest() == clean["content_hash"]
    assert content.decode().splitlines()[1:] == SALES_CSV.splitlines()[1:]
    assert client.get(f"/v1/datasets/{clean['content_hash']}").json() == clean


def test_derive_again_answers_200_and_sends_nothing(client: TestClient, settings: Settings) -> None:
    raw = registered(client, RAW_CSV)
    url = f"/v1/datasets/{raw['content_hash']}/derive"
    first = client.post(url, json={"steps": CLEAN_STEPS}).json()
    files, block = stored_files(settings), head(client)
    again = client.post(url, json={"steps": CLEAN_STEPS})
    assert again.status_code == 200, again.text
    assert again.json() == first
    assert head(client) == block
    assert stored_files(settings) == files


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"steps": [{"step": "shuffle"}]}, "invalid-transform"),
        ({"steps": [{"step": "drop_missing", "columns": ["nope"]}]}, "unknown-column"),
        ({"steps": [{**FILTER, "op": ">", "value": 10**6}]}, "empty-result"),
        ({"steps": [{**FILTER, "op": "~", "value": 1}]}, "invalid-transform"),
        ({"steps": [{"step": "clip_outliers", "method": "median"}]}, "invalid-transform"),
        ({"steps": []}, "invalid-request"),
        ({"steps": "drop_duplicates"}, "invalid-request"),
        ({"spec": CLEAN_STEPS}, "invalid-request"),
        ({"steps": CLEAN_STEPS, "extra": 1}, "invalid-request"),
    ],
    ids=["unknown-step", "unknown-column", "empty-result", "bad-op", "bad-method", "no-steps",
         "steps-not-a-list", "no-steps-key", "extra-key"],
)  # fmt: skip
def test_invalid_derive_is_422_and_nothing_is_kept(
    shared: Shared, body: dict[str, Any], problem: str
) -> None:
    client, settings, raw = shared
    files, block = stored_files(settings), head(client)
    assert_problem(
        client.post(f"/v1/datasets/{raw['content_hash']}/derive", json=body), 422, problem
    )
    assert stored_files(settings) == files
    assert head(client) == block


def test_derive_with_a_malformed_json_body_is_422(shared: Shared) -> None:
    response = shared.client.post(
        f"/v1/datasets/{shared.raw['content_hash']}/derive",
        content=b'{"steps": [',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 422, "invalid-request")


def test_derive_from_an_unknown_dataset_is_404(client: TestClient) -> None:
    response = client.post(f"/v1/datasets/{UNKNOWN}/derive", json={"steps": CLEAN_STEPS})
    assert_problem(response, 404, "unknown-dataset")


def test_derive_from_a_malformed_hash_is_422(client: TestClient) -> None:
    response = client.post("/v1/datasets/0xabc/derive", json={"steps": CLEAN_STEPS})
    assert_problem(response, 422, "invalid-request")


def test_derive_from_a_revoked_dataset_is_409_and_sends_nothing(
    client: TestClient, settings: Settings
) -> None:
    raw = registered(client, RAW_CSV)
    revoked = client.post(f"/v1/records/{raw['content_hash']}/revoke", json={"reason": "leaked"})
    assert revoked.status_code == 200, revoked.text
    files, block = stored_files(settings), head(client)
    response = client.post(
        f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": CLEAN_STEPS}
    )
    body = assert_problem(response, 409, "record-revoked")
    assert raw["content_hash"] in body["detail"]
    assert head(client) == block
    assert stored_files(settings) == files
