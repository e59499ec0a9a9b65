"""Per-client rate limits: a token bucket per API key, and one per address for anonymous callers.

:class:`RateLimit` is ASGI middleware placed just inside :class:`~api.auth.AuthGate`, so it
knows the caller's key: a keyed caller is counted by key id (``rate_limit_keyed`` requests per
second, bursts of ``rate_limit_keyed_burst``), an anonymous one by its address
(``rate_limit_anonymous``, ``rate_limit_anonymous_burst``). A request past its bucket is answered
429 problem+json with ``Retry-After`` before its body is read. A route whose one request does
the work of many (a JSON-RPC batch) takes the rest with :func:`charge`.

A rate says how often a client may ask, not how much work it may keep going: :class:`Turns`
also lets a route run at most so many requests of one client at a time (``/rpc``), the others
waiting their turn without holding a thread, so one client's slow calls never take every
reader from the others.

Behind a reverse proxy every caller shares the proxy's address: run uvicorn with
``--proxy-headers --forwarded-allow-ips`` so the address is the client's own.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from time import monotonic

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import problem_response

__all__ = [
    "Bucket",
    "RateLimit",
    "RateLimiter",
    "TooManyRequests",
    "Turns",
    "charge",
    "client_of",
    "too_many_response",
]

MAX_CLIENTS = 100_000  # buckets kept; the least recently seen is dropped past this
_STATE = "rate_limit"


class TooManyRequests(Exception):
    """429: a caller past its rate limit, or expensive work past its pool's bound."""

    def __init__(self, detail: str, *, retry_after: float, limit: str) -> None:
        super().__init__(detail)
        self.detail, self.limit = detail, limit
        self.retry_after = max(1, math.ceil(retry_after))


def too_many_response(exc: TooManyRequests) -> JSONResponse:
    """The 429 problem+json answer, with ``Retry-After`` in whole seconds."""
    response = problem_response(429, "too-many-requests", exc.detail, limit=exc.limit)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@dataclass(frozen=True)
class Bucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``rate`` 0 means no limit."""

    rate: float
    burst: int
    setting: str


class RateLimiter:
    """Token buckets by client; thread-safe."""

    def __init__(self, *, anonymous: Bucket, keyed: Bucket) -> None:
        self.anonymous, self.keyed = anonymous, keyed
        self._tokens: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, bucket: Bucket, cost: int = 1) -> None:
        """Take ``cost`` tokens from ``client``'s bucket, or raise :class:`TooManyRequests`."""
        if bucket.rate <= 0:
            return
        now = monotonic()
        with self._lock:
            tokens, updated = self._tokens.pop(client, (float(bucket.burst), now))
            tokens = min(float(bucket.burst), tokens + (now - updated) * bucket.rate)
            if tokens < cost:
                self._tokens[client] = (tokens, now)
                wait = (cost - tokens) / bucket.rate
                raise TooManyRequests(
                    f"rate limit: {bucket.rate:g} requests per second, bursts of {bucket.burst}",
                    retry_after=wait,
                    limit=bucket.setting,
                )
            self._tokens[client] = (tokens - cost, now)
            while len(self._tokens) > MAX_CLIENTS:
                self._tokens.popitem(last=False)


def client_of(scope: Scope) -> str:
    """Who is asking: ``key:<id>`` for a keyed caller (the gate has checked the key), else
    ``address:<ip>``."""
    info = scope.get("state", {}).get("api_key")
    if info is not None:
        return f"key:{info.key_id}"
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


def _client(scope: Scope, limiter: RateLimiter) -> tuple[str, Bucket]:
    client = client_of(scope)
    return client, limiter.keyed if client.startswith("key:") else limiter.anonymous


class RateLimit:
    """ASGI middleware: one token per HTTP request from the caller's bucket (see the module)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app, self.limiter = app, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client, bucket = _client(scope, self.limiter)
        try:
            self.limiter.take(client, bucket)
        except TooManyRequests as exc:
            await too_many_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})[_STATE] = (self.limiter, client, bucket)
        await self.app(scope, receive, send)


def charge(request: Request, cost: int) -> None:
    """Take ``cost`` more tokens for this request's caller (a no-op without the middleware)."""
    held = request.scope.get("state", {}).get(_STATE)
    if held is not None and cost > 0:
        limiter, client, bucket = held
        limiter.take(client, bucket, cost)


class Turns:
    """At most ``limit`` requests of one client at a time; the others wait their turn, in the
    event loop (no thread), for at most ``wait`` seconds, then 429 with ``Retry-After``.

    Made inside the event loop that uses it (the app's lifespan).
    """

    def __init__(self, limit: int, *, wait: float, setting: str) -> None:
        self.limit, self.wait, self.setting = limit, wait, setting
        self._clients: dict[str, tuple[anyio.Semaphore, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, request: Request) -> AsyncIterator[None]:
        client = client_of(request.scope)
        semaphore, users = self._clients.setdefault(client, (anyio.Semaphore(self.limit), [0]))
        users[0] += 1
        try:
            try:
                with anyio.fail_after(self.wait):
                    await semaphore.acquire()
            except TimeoutError:
                raise TooManyRequests(
                    f"{self.limit} of your requests are running and more are waiting; retry later",
                    retry_after=self.wait,
                    limit=self.setting,
                ) from None
            try:
                yield
            finally:
                semaphore.release()
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._clients[client]
