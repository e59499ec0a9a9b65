"""Same inputs → same model hash and metadata hash, in this process and in fresh ones.

Two child interpreters with different hash seeds (so set and dict-of-str ordering, ``id()``
values and memory layout all differ) train every algorithm and print their hashes; both must
equal each other and the hashes computed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ml.datasets import load_dataset
from ml.training import ALGORITHMS, train

CHILD = """
import json, sys
from ml.datasets import load_dataset
from ml.training import train
jobs = json.loads(sys.argv[1])
out = {}
for algorithm, (path, params) in jobs.items():
    trained = train(load_dataset(path), algorithm=algorithm, target="target", params=params,
                    test_size=0.25, seed=11)
    out[algorithm] = [trained.model_hash.hex(), trained.metadata_hash.hex()]
print(json.dumps(out))
"""


def _jobs(real_data: dict, small_params: dict) -> dict[str, tuple[str, dict]]:
    jobs = {}
    for algorithm, algo in ALGORITHMS.items():
        name = "diabetes" if algo.task == "regression" else "iris"
        jobs[algorithm] = (str(real_data[name].path), small_params[algorithm])
    return jobs


def _child(jobs: dict, hash_seed: str) -> dict[str, list[str]]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(jobs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_algorithm_is_deterministic_across_processes(
    real_data: dict, small_params: dict
) -> None:
    jobs = _jobs(real_data, small_params)
    here = {}
    for algorithm, (path, params) in jobs.items():
        trained = train(
            load_dataset(path),
            algorithm=algorithm,
            target="target",
            params=params,
            test_size=0.25,
            seed=11,
        )
        here[algorithm] = [trained.model_hash.hex(), trained.metadata_hash.hex()]
    first = _child(jobs, "1")
    second = _child(jobs, "2024")
    assert set(here) == set(ALGORITHMS)
    for algorithm in ALGORITHMS:
        assert first[algorithm] == second[algorithm] == here[algorithm], algorithm
    # Different algorithms never collide.
    assert len({model for model, _ in here.values()}) == len(ALGORITHMS)
