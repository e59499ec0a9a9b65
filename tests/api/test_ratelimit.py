"""Per-client rate limits: a bucket per API key and one per address for anonymous callers; past
it a 429 problem with ``Retry-After``, before the request's body is read."""

from __future__ import annotations

import pytest

from api import ratelimit
from api.ratelimit import Bucket, RateLimiter, TooManyRequests
from api.settings import Settings
from tests.api.conftest import SALES_CSV, assert_problem, authorized_client, upload

ANONYMOUS = {"Authorization": ""}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit, "monotonic", fake)
    return fake


def test_a_bucket_refills_at_its_rate_up_to_its_burst(clock):
    limiter = RateLimiter(anonymous=Bucket(2, 3, "a"), keyed=Bucket(0, 1, "k"))
    for _ in range(3):
        limiter.take("client", limiter.anonymous)
    with pytest.raises(TooManyRequests) as refused:
        limiter.take("client", limiter.anonymous)
    assert (refused.value.retry_after, refused.value.limit) == (1, "a")
    limiter.take("other", limiter.anonymous)  # every client has its own bucket
    clock.now += 0.5  # one token back
    limiter.take("client", limiter.anonymous)
    with pytest.raises(TooManyRequests):
        limiter.take("client", limiter.anonymous)
    clock.now += 3600  # never more than the burst saved up
    for _ in range(3):
        limiter.take("client", limiter.anonymous)
    with pytest.raises(TooManyRequests):
        limiter.take("client", limiter.anonymous)
    with pytest.raises(TooManyRequests) as costly:  # a cost larger than what is left
        limiter.take("fresh", limiter.anonymous, cost=5)
    assert costly.value.retry_after == 1  # whole seconds, at least one
    for _ in range(1000):  # rate 0: no limit
        limiter.take("key", limiter.keyed)


@pytest.fixture
def limited(tmp_path, clock):
    settings = Settings(
        data_dir=tmp_path / "data", anchor_interval=3600, rate_limit_anonymous=1,
        rate_limit_anonymous_burst=4, rate_limit_keyed=1, rate_limit_keyed_burst=6,
    )  # fmt: skip
    with authorized_client(settings) as client:
        yield client


def test_an_anonymous_caller_past_its_burst_gets_429_with_retry_after(limited, clock):
    for _ in range(4):
        assert limited.get("/healthz", headers=ANONYMOUS).status_code == 200
    refused = limited.get("/healthz", headers=ANONYMOUS)
    body = assert_problem(refused, 429, "too-many-requests")
    assert body["limit"] == "rate_limit_anonymous"
    assert refused.headers["retry-after"] == "1"
    assert limited.get("/healthz").status_code == 200  # the admin key has a bucket of its own
    clock.now += 1
    assert limited.get("/healthz", headers=ANONYMOUS).status_code == 200


def test_each_key_has_its_own_bucket_and_a_refused_write_changes_nothing(limited, clock):
    key = limited.post("/v1/admin/keys", json={"role": "registrar"}).json()["key"]
    registrar = {"Authorization": f"Bearer {key}"}
    for _ in range(6):
        assert limited.get("/v1/chain", headers=registrar).status_code == 200
    store = limited.app.state.service.core.store
    before = sorted(store.digests())
    refused = limited.post("/v1/datasets", files={"file": ("x.csv", SALES_CSV)}, headers=registrar)
    assert assert_problem(refused, 429, "too-many-requests")["limit"] == "rate_limit_keyed"
    assert sorted(store.digests()) == before
    assert upload(limited).status_code == 201  # the admin's bucket is untouched


def test_a_json_rpc_batch_costs_one_token_per_call(limited, clock):
    call = {"jsonrpc": "2.0", "method": "eth_chainId", "params": []}
    batch = [{**call, "id": i} for i in range(4)]
    answered = limited.post("/rpc", json=batch, headers=ANONYMOUS)
    assert len(answered.json()) == 4  # the whole burst
    refused = limited.post("/rpc", json={**call, "id": 9}, headers=ANONYMOUS)
    assert_problem(refused, 429, "too-many-requests")
    clock.now += 2
    too_big = limited.post("/rpc", json=batch, headers=ANONYMOUS)  # 1 at the door, 3 more: no
    assert_problem(too_big, 429, "too-many-requests")


def test_limits_set_to_zero_turn_rate_limiting_off(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", rate_limit_anonymous=0)
    with authorized_client(settings) as client:
        assert all(client.get("/healthz", headers=ANONYMOUS).status_code == 200 for _ in range(300))
