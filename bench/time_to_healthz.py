"""How long a service takes from its start to its first ``/healthz`` answer, on an empty data
directory and the embedded chain, warm and not warm (``PROVENANCE_TRAINING_WARM``), optionally
in alternation with the service's code in ``--baseline DIR`` (``git archive`` unpacked there,
its C extensions copied in).

    python -m bench.time_to_healthz [--runs 3] [--baseline DIR]

Why: the test suite starts some sixty services, most of them not warm, and a service that only
registers data never needs scikit-learn; what a start costs is paid by every one of them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench._server import served_from


def _started_in(source: Path | None, warm: bool) -> float:
    env = {"PROVENANCE_TRAINING_WARM": str(warm).lower()}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    with tempfile.TemporaryDirectory() as tmp, served_from(Path(tmp), env, source) as server:
        return server.started_in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None)
    args = parser.parse_args()
    sides: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.baseline is not None:
        sides.insert(0, ("baseline", args.baseline.resolve()))
    for warm in (False, True):
        times: dict[str, list[float]] = {label: [] for label, _ in sides}
        for _ in range(args.runs):
            for label, source in sides:
                times[label].append(_started_in(source, warm))
        for label, measured in times.items():
            runs = ", ".join(f"{t:.2f}" for t in measured)
            print(
                f"{label}, {'warm' if warm else 'not warm'}: start to /healthz median "
                f"{statistics.median(measured):.2f} s ({runs})"
            )


if __name__ == "__main__":
    main()
