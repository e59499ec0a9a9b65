"""How many Python processes a run of tests starts, and what CPU they all took: the figures
behind ``PROVENANCE_TRAINING_WARM`` in the test suite (BENCHMARKS.md, "The test suite's wall
time, sixth session").

    python -m bench.suite_processes [pytest arguments...]

Runs ``pytest`` with the arguments given, with a ``sitecustomize`` on ``PYTHONPATH`` that logs
every ``python -m`` start (the services the tests start, their training processes, the CLI in a
child process); prints them by kind, with the CPU (user + system) of pytest and every process
it waited for, which includes every descendant reaped in turn. Set ``PROVENANCE_TRAINING_WARM``
in the environment to compare both ways (the test suite sets it false unless it is set).
"""

from __future__ import annotations

import collections
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

_HOOK = """\
import sys
if sys.argv[:1] == ["-m"]:  # "python -m X args": X is not in argv yet, its arguments are
    with open({log!r}, "a") as f:
        f.write((" ".join(sys.argv[1:2]) or "(no arguments)") + "\\n")
"""


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "starts.log"
        log.touch()
        (Path(tmp) / "sitecustomize.py").write_text(_HOOK.format(log=str(log)))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [tmp, os.environ.get("PYTHONPATH")])),
        }
        done = subprocess.run([sys.executable, "-m", "pytest", *argv], env=env)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        kinds = collections.Counter(log.read_text().splitlines())
    print(
        f"\npytest exit status {done.returncode}; CPU of the run and its children: "
        f"{usage.ru_utime + usage.ru_stime:.1f} s "
        f"(PROVENANCE_TRAINING_WARM={os.environ.get('PROVENANCE_TRAINING_WARM', 'unset')})"
    )
    print("python -m starts by first argument (a service: serve; a training process: none):")
    for kind, count in kinds.most_common():
        print(f"  {count:4d}  {kind}")


if __name__ == "__main__":
    main(sys.argv[1:])
