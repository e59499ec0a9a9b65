"""A training process: ``python -m ml._worker``, driven by :class:`ml.training_pool.TrainingPool`.

Private. Why a process of its own: a training can run for as long and take as much memory as
its request asks, so it runs where it can be stopped (killed past its time limit, refused
memory past its memory limit) without taking the service with it, and in a numeric
environment set before numpy loads (one thread; ``OPENBLAS_CORETYPE`` when the operator pins
a kernel set). It stays warm between jobs: importing scikit-learn takes about a second.

Jobs arrive on stdin and answers leave on the original stdout (:mod:`ml._wire`); anything
else printed goes to stderr. The process exits when stdin closes, when its parent dies (a
watchdog thread notices), or after a job ran out of memory (its heap may be in any state).
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ml import _wire

_CACHED_DATASETS = 2


def main() -> None:
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the answers
    _watch_parent(os.getppid())
    # Warm: the imports a job needs, before saying ready.
    from ml.datasets import Limits, load_dataset
    from ml.environment import numeric_environment
    from ml.errors import MlError
    from ml.training import retrain, train

    datasets: OrderedDict[str, Any] = OrderedDict()

    def dataset(spec: dict[str, Any]) -> Any:
        """The dataset at ``spec["path"]``, checked against ``spec["hash"]`` on its read."""
        from ml.errors import DatasetChanged
        from ml.hashing import to_hex

        key = spec["hash"]
        if key in datasets:
            datasets.move_to_end(key)
            return datasets[key]
        loaded = load_dataset(Path(spec["path"]), Limits(**spec["limits"]))
        if to_hex(loaded.content_hash) != key:
            raise DatasetChanged(to_hex(loaded.content_hash))
        datasets[key] = loaded
        while len(datasets) > _CACHED_DATASETS:
            datasets.popitem(last=False)
        return loaded

    def do_train(job: dict[str, Any], _blobs: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        trained = train(dataset(job["dataset"]), **job["request"])
        return {}, [trained.model_bytes, trained.metadata_bytes]

    def do_retrain(job: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        import json

        from ml.hashing import from_hex
        from ml.reproduce import judge_retrain

        metadata = json.loads(blobs[1])
        data = dataset(job["dataset"])
        again = retrain(data, metadata)
        verdict = judge_retrain(
            blobs[0], from_hex(job["model_hash"]), metadata, again.model_bytes, again.metadata, data
        )
        return {"reproduction": verdict.to_json()}, [again.model_bytes, again.metadata_bytes]

    handlers = {"train": do_train, "retrain": do_retrain}
    _wire.write(answers, {"ready": True, "environment": numeric_environment()})
    stdin = sys.stdin.buffer.fileno()
    while True:
        try:
            job, blobs = _wire.read(stdin)
        except _wire.WireClosed:
            return
        out_of_memory = False
        _limit_memory(job.get("memory_limit"))
        try:
            header, results = handlers[job["op"]](job, blobs)
            answer: dict[str, Any] = {"ok": True, **header}
        except MemoryError:
            results, out_of_memory = [], True
            answer = {"ok": False, "out_of_memory": True}
        except MlError as exc:
            results, answer = [], {"ok": False, "error": _wire.error_to_json(exc)}
        except Exception as exc:  # a finding to report, not a reason to die
            message = f"{type(exc).__name__}: {exc}"
            results, answer = [], {"ok": False, "error": {"message": message}}
        finally:
            _limit_memory(None)
        _wire.write(answers, answer, results)
        if out_of_memory:
            return


def _limit_memory(limit: int | None) -> None:
    """Cap this process's heap (RLIMIT_DATA) at what it holds now plus ``limit`` bytes; None
    lifts the cap. Past the cap, allocations fail with MemoryError instead of growing."""
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if limit is None:
        resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))
        return
    soft = _data_bytes() + int(limit)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _data_bytes() -> int:
    """This process's data segment now (``VmData``), as RLIMIT_DATA counts it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    return 0


def _watch_parent(parent: int) -> None:
    """Exit as soon as the parent is gone (killed with -9, say), even in the middle of a job."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # the service stopped (or closed the pool) while this one spoke
        os._exit(0)  # quietly: no traceback on the service's terminal, nothing left to flush
