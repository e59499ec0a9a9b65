"""The real service on loopback with the console's test ledger (:mod:`tests.console._world`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from api.devserver import ServiceProcess
from tests.console._world import World, build_world

__all__ = ["Served", "served_world"]


@dataclass(frozen=True)
class Served:
    url: str
    world: World
    data_dir: Path


@contextmanager
def served_world(work: Path) -> Iterator[Served]:
    """``provenance serve`` on a free 127.0.0.1 port with the world built in it; stopped (and
    its log shown on a failure) when the block ends."""
    env = {"PROVENANCE_ANCHOR_INTERVAL": "3600", "PROVENANCE_ANCHOR_BATCH_SIZE": "10000"}
    server = ServiceProcess(work / "data", env=env)
    try:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as api:
            world = build_world(api, server.data_dir)
        yield Served(server.url, world, server.data_dir)
    except BaseException:
        print(f"server log {server.log_path}:\n{server.log_tail(20_000)}")
        raise
    finally:
        server.stop(grace=30)
