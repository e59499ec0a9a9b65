"""The service's side of the readers: a bounded pool of reader processes behind a web3 provider.

:class:`ReaderPool` keeps at most ``ReadLimits.readers`` reader processes (``_snapshot.py``),
started on first use from a fork server that has already imported py-evm, so a new reader costs
a fork, not a second of imports. A read:

1. takes an idle reader, starting one if the pool is not full, or waits for one as long as its
   budget allows, then gives up with :class:`~ledger.chain.backends.reads.ReadersBusy`;
2. sends ``(method, params, budget)``; the reader aborts an EVM run past ``budget`` itself and
   answers an error;
3. if no answer comes within the budget and a grace period (a single precompile can run
   longer than any check), the reader is killed, forgotten, and the read fails with
   :class:`~ledger.chain.backends.reads.ReadTimeout`: a stuck reader never holds a slot.

:class:`SnapshotProvider` is eth-tester's web3 provider with its requests sent to the pool, so
web3 formats requests and results exactly as it does for the writer's own chain.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from web3.providers.base import BaseProvider
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse

from ledger.chain.backends.reads import (
    ReadersBusy,
    ReadLimits,
    ReadTimeout,
    extend_deadline,
    remaining_budget,
)
from ledger.errors import ChainUnavailable

__all__ = ["ReaderPool", "SnapshotProvider"]

log = logging.getLogger("provenance.ledger")

_START_TIMEOUT = 120.0  # the first reader waits for the fork server's imports
_GRACE = 1.0  # past the budget, before a silent reader is killed
_KILL_AFTER = 2.0  # the factor of the budget after which it is killed in any case
_MIN_BUDGET = 0.05  # a read that had to wait still gets this long


def _context() -> Any:
    """The fork server context, preloading the reader's imports once for every reader (and the
    main script, which a new process would otherwise import again, when it runs as a path)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "ledger.chain.backends._snapshot"])
    return context


class _Reader:
    """One reader process and the service's end of its pipe."""

    def __init__(self, chain_file: Path, limits: ReadLimits) -> None:
        from ledger.chain.backends._snapshot import serve

        context = _context()
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=serve, args=(child, str(chain_file), limits), name="chain-reader", daemon=True
        )
        self.process.start()
        child.close()
        if not self.conn.poll(_START_TIMEOUT) or self._receive() != "ready":
            self.kill()
            raise ChainUnavailable("a chain reader did not start")

    def _receive(self) -> Any:
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            return None

    def ask(self, method: str, params: Any, budget: float) -> RPCResponse:
        """The reader's answer; :class:`ReadTimeout` (reader killed) if it does not come."""
        try:
            self.conn.send((method, params, budget))
        except (OSError, ValueError) as exc:
            self.kill()
            raise ChainUnavailable(f"a chain reader stopped: {exc}") from exc
        if not self.conn.poll(max(budget * _KILL_AFTER, budget + _GRACE)):
            self.kill()
            raise ReadTimeout(budget)
        answer = self._receive()
        if answer is None:
            self.kill()
            raise ChainUnavailable("a chain reader stopped while reading")
        return answer

    def kill(self) -> None:
        """Stop the process now (idempotent)."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(timeout=2)
        self.kill()


class ReaderPool:
    """At most ``limits.readers`` reader processes over ``chain_file``, shared by threads."""

    def __init__(self, chain_file: Path, limits: ReadLimits) -> None:
        self.chain_file = chain_file
        self.limits = limits
        self._idle: list[_Reader] = []
        self._alive: set[_Reader] = set()  # started and not stopped, idle or busy
        self._starting = 0
        self._available = threading.Condition()
        self._closed = False

    def request(self, method: str, params: Any) -> RPCResponse:
        """Answer one request within the thread's budget (see ``reads.remaining_budget``).

        Starting a reader (once, or after one was killed) does not count against the budget:
        the thread's deadline moves back by the time it took.
        """
        wait = remaining_budget(self.limits.time_budget)
        if wait <= 0:
            raise ReadTimeout(self.limits.time_budget)
        reader = self._take(time.monotonic() + wait)
        healthy = False
        try:
            budget = max(remaining_budget(self.limits.time_budget), _MIN_BUDGET)
            answer = reader.ask(method, params, budget)
            healthy = True
            return answer
        finally:
            self._give_back(reader, healthy)

    def _take(self, deadline: float) -> _Reader:
        with self._available:
            while True:
                if self._closed:
                    raise ChainUnavailable("the embedded chain is closed")
                if self._idle:
                    return self._idle.pop()
                if len(self._alive) + self._starting < self.limits.readers:
                    self._starting += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0 or not self._available.wait(left):
                    raise ReadersBusy(self.limits.readers)
        reader = None
        started = time.monotonic()
        try:
            reader = _Reader(self.chain_file, self.limits)
            extend_deadline(time.monotonic() - started)  # the read's budget starts now
            return reader
        finally:
            with self._available:
                self._starting -= 1
                if reader is not None:
                    self._alive.add(reader)
                self._available.notify()

    def _give_back(self, reader: _Reader, healthy: bool) -> None:
        with self._available:
            keep = healthy and not self._closed
            if keep:
                self._idle.append(reader)
            else:
                self._alive.discard(reader)
            self._available.notify()
        if keep:
            return
        if healthy:  # the pool closed meanwhile
            reader.stop()
        else:  # whatever went wrong, no process outlives its place in the pool
            reader.kill()

    @property
    def processes(self) -> list[BaseProcess]:
        """The reader processes alive now (idle or busy)."""
        with self._available:
            return [reader.process for reader in self._alive]

    @property
    def busy(self) -> int:
        """Readers answering a read now."""
        with self._available:
            return len(self._alive) - len(self._idle)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes if process.pid is not None]

    def close(self) -> None:
        """Stop every idle reader; a busy one is stopped when its read returns."""
        with self._available:
            self._closed = True
            idle, self._idle = self._idle, []
            self._alive.difference_update(idle)
            self._available.notify_all()
        for reader in idle:
            reader.stop()


class SnapshotProvider(EthereumTesterProvider):
    """eth-tester's provider (its request and result formatting) over a :class:`ReaderPool`."""

    def __init__(self, pool: ReaderPool, *, accounts: list[str], chain_id: int) -> None:
        BaseProvider.__init__(self)  # no tester of its own: the readers have theirs
        self.pool = pool
        # web3 asks for these around every call (its ``from`` default, its chain id check):
        # they never change, so they are answered here rather than by a reader
        self._constant = {"eth_accounts": accounts, "eth_chainId": chain_id}

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        if method in self._constant:
            return {"jsonrpc": "2.0", "id": 0, "result": self._constant[method]}  # type: ignore[typeddict-item]
        return self.pool.request(method, params)
