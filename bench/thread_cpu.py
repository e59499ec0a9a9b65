"""Each thread's CPU time while the MQTT worker drains a backlog (issue 27): which thread of the
service, of its MQTT worker and of Mosquitto uses how much of the cores, where a profiler shows
only where a thread is, not how much CPU it got.

Run it beside ``python -m bench.bench_streams``: it waits for the longest life of an MQTT
worker process (the bench's first, short-lived service only creates the stream), samples
``/proc/PID/task/TID/stat`` (user + system time) every half second meanwhile, and prints each
process's and each thread's CPU seconds over that window::

    python -m bench.thread_cpu & python -m bench.bench_streams --readings 2000000 \\
        --per-message 10 --service-only; wait
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

__all__ = ["main"]

_HZ = os.sysconf("SC_CLK_TCK")
_WATCHED = ("mosquitto", "provenance", "mqtt_worker", "api serve")


def _processes() -> dict[str, str]:
    """The watched processes: pid -> command line."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(word in command for word in _WATCHED) and "bench" not in command:
            found[pid] = command[:60]
    return found


def _threads(pid: str) -> dict[tuple[str, str], float]:
    """(pid, tid) -> CPU seconds so far."""
    times = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            times[(pid, tid)] = (int(fields[11]) + int(fields[12])) / _HZ
    except OSError:
        pass
    return times


def main() -> None:
    first: dict[tuple[str, str], float] | None = None
    last: dict[tuple[str, str], float] = {}
    commands: dict[str, str] = {}
    started = ended = 0.0
    while True:
        processes = _processes()
        snapshot: dict[tuple[str, str], float] = {}
        for pid in processes:
            snapshot.update(_threads(pid))
        if any("mqtt_worker" in command for command in processes.values()):
            if first is None:
                first, started = snapshot, time.monotonic()
            last, ended = snapshot, time.monotonic()
            commands.update(processes)
        elif first is not None:
            if ended - started > 5:  # the drain's worker, not the first service's
                break
            first = None
        time.sleep(0.5)
    used = {key: seconds - first.get(key, 0.0) for key, seconds in last.items()}
    by_process: Counter[str] = Counter()
    for (pid, _), seconds in used.items():
        by_process[pid] += seconds
    print(f"window {ended - started:.1f} s")
    for pid, seconds in by_process.most_common():
        print(f"{seconds:7.2f} s  {pid}  {commands.get(pid, '?')}")
    for (pid, tid), seconds in Counter(used).most_common(12):
        print(f"    {seconds:7.2f} s  thread {tid} of {pid}")


if __name__ == "__main__":
    main()
