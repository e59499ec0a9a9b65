"""What every benchmark shares: statistics, tables, result files, budgets, chains and the
baseline transaction sender.

Nothing here passes or fails on time: benchmarks print figures and write JSON.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.backends.base import ChainBackend
from ledger.chain.backends.embedded import EmbeddedBackend
from ledger.chain.backends.rpc import RpcBackend
from ledger.chain.devnode import AnvilNode, anvil_binary

__all__ = [
    "BENCH_DIR",
    "ETHER",
    "RESULTS_DIR",
    "Chain",
    "Config",
    "RawSender",
    "anvil_available",
    "cpu_seconds",
    "fmt",
    "fmt_int",
    "machine",
    "open_chain",
    "paired_ratio",
    "percentile",
    "print_table",
    "py_spy_sampling",
    "summarize",
    "write_results",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
ETHER = 10**18

# Fees every benchmark transaction pays: far above a local chain's base fee, no estimation.
MAX_FEE = 10**11
PRIORITY_FEE = 10**9


@dataclass(frozen=True)
class Config:
    """How much work a run does: ``quick`` for a short run, full otherwise; ``smoke`` (the
    test suite's: every benchmark's code runs once, at sizes too small for its figures to mean
    anything) is a quick run with smaller sizes where a benchmark names them."""

    quick: bool
    runs: int
    tmp: Path
    anvil: bool = True
    # Quick runs share one default-settings service (bench._server.service); None: never.
    shared: Any = None
    smoke: bool = False

    def pick(self, quick: Any, full: Any, *, smoke: Any = None) -> Any:
        if self.smoke and smoke is not None:
            return smoke
        return quick if self.quick else full


# -- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median with its spread: p25-p75 and min-max, over the runs given."""
    values = list(values)
    return {
        "median": statistics.median(values) if values else float("nan"),
        "p25": percentile(values, 25),
        "p75": percentile(values, 75),
        "min": min(values) if values else float("nan"),
        "max": max(values) if values else float("nan"),
        "runs": len(values),
        "values": values,
    }


def paired_ratio(subject: Sequence[float], baseline: Sequence[float]) -> dict[str, Any]:
    """The ratio subject/baseline per interleaved pair of runs, summarised.

    Runs are interleaved (subject, baseline, subject, ...) so a noisy neighbour slows both.
    """
    ratios = [s / b for s, b in zip(subject, baseline, strict=False) if b]
    return summarize(ratios)


def fmt(value: float, digits: int = 3) -> str:
    """A figure with about ``digits`` significant digits, no scientific notation."""
    if value != value:  # NaN
        return "-"
    magnitude = abs(value)
    if magnitude >= 10 ** (digits - 1) or magnitude == 0:
        return f"{value:,.0f}"
    decimals = digits - 1 - int(f"{magnitude:e}".split("e")[1])
    return f"{value:,.{max(decimals, 0)}f}"


def fmt_int(value: float) -> str:
    """Gas and other counts: whole numbers at 100 and above, 3 significant digits below."""
    return f"{value:,.0f}" if abs(value) >= 100 else fmt(value)


# -- output ----------------------------------------------------------------------------------


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print a Markdown table (pasteable into BENCHMARKS.md) and return its text."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    text = "\n".join(
        [
            f"**{title}**",
            "",
            line(cells[0]),
            "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *(line(r) for r in cells[1:]),
        ]
    )
    print(text + "\n", flush=True)
    return text


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(command: list[str]) -> str | None:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def machine() -> dict[str, Any]:
    """Cores, memory and the versions of everything that moves the figures."""
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = round(int(line.split()[1]) * 1024 / 2**30, 1)
    except OSError:
        pass
    anvil = anvil_binary()
    eas = BENCH_DIR / "node_modules" / "@ethereum-attestation-service" / "eas-contracts"
    eas_version = None
    if (eas / "package.json").exists():
        eas_version = json.loads((eas / "package.json").read_text())["version"]
    return {
        "cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_gib": mem_total,
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "node": _run(["node", "--version"]),
        "anvil": _run([str(anvil), "--version"]) if anvil else None,
        "eas_contracts": eas_version,
        "packages": {
            name: _version(name)
            for name in (
                "web3",
                "eth-tester",
                "py-evm",
                "eth-account",
                "coincurve",
                "pycryptodome",
                "fastapi",
                "uvicorn",
                "httpx",
                "pydantic",
                "scikit-learn",
                "numpy",
            )
        },
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def write_results(name: str, document: dict[str, Any], tables: Sequence[str]) -> Path:
    """Write ``bench/results/<name>.json`` with the figures, the tables and the machine."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "benchmark": name,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        **document,
        "tables": list(tables),
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results: {path.relative_to(REPO_ROOT)}\n", flush=True)
    return path


# -- chains ----------------------------------------------------------------------------------


def anvil_available() -> bool:
    return anvil_binary() is not None


@dataclass
class Chain:
    """A backend plus its faucet, for one benchmark run on a fresh chain."""

    name: str
    backend: ChainBackend
    node: AnvilNode | None = None

    def account(self, wei: int = 1_000 * ETHER) -> LocalAccount:
        """A fresh funded account."""
        account = Account.create()
        self.fund(account.address, wei)
        return account

    def fund(self, address: str, wei: int = 1_000 * ETHER) -> None:
        if self.node is not None:
            self.node.set_balance(address, wei)
        else:
            self.backend.fund(address, wei)


@contextmanager
def open_chain(name: str, work: Path) -> Iterator[Chain]:
    """A fresh chain: ``embedded`` (in-memory eth-tester), ``embedded-disk`` (persistent under
    ``work``) or ``anvil`` (a node on a free loopback port, stopped on exit)."""
    if name == "anvil":
        with AnvilNode(work / "anvil") as node:
            backend = RpcBackend(node.url, timeout=30)
            try:
                yield Chain(name, backend, node)
            finally:
                backend.close()
        return
    backend = EmbeddedBackend(work / "chain" if name == "embedded-disk" else None)
    try:
        yield Chain(name, backend)
    finally:
        backend.close()


@contextmanager
def scratch_dir(config: Config, prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=config.tmp))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class RawSender:
    """The baseline's way to write: sign locally with a tracked nonce, send raw with an
    explicit gas limit and fixed fees, wait for the receipt. Nothing else: no simulation, no
    estimation, no fee look-up (DESIGN.md: the fastest a web3 write can be)."""

    def __init__(self, backend: ChainBackend, account: LocalAccount) -> None:
        self.w3 = backend.w3
        self.account = account
        self.chain_id = self.w3.eth.chain_id
        self.nonce = self.w3.eth.get_transaction_count(account.address, "pending")

    def send(self, to: str | None, data: bytes | str, gas: int) -> Any:
        """Send one transaction and return its receipt (raises if it reverted)."""
        tx: dict[str, Any] = {
            "data": data,
            "value": 0,
            "gas": gas,
            "nonce": self.nonce,
            "chainId": self.chain_id,
            "maxFeePerGas": MAX_FEE,
            "maxPriorityFeePerGas": PRIORITY_FEE,
            "type": 2,
        }
        if to is not None:
            tx["to"] = to
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self.nonce += 1
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)
        if receipt["status"] != 1:
            raise RuntimeError(f"baseline transaction 0x{bytes(tx_hash).hex()} reverted")
        return receipt

    def deploy(self, bytecode: str, gas: int = 8_000_000) -> str:
        """Deploy creation code; return the contract address."""
        return self.send(None, bytecode, gas)["contractAddress"]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) process ``pid`` has used so far: a service's cost
    per operation, a figure other load on the machine does not inflate as it does wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def py_spy_sampling(pid: int, out: Path, *, gil: bool = False) -> Iterator[None]:
    """py-spy (from this venv) samples process ``pid`` at 200 Hz into ``out`` (raw, for
    flame graphs) while the block runs (``gil``: only samples holding the GIL)."""
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    spy = [py_spy, "record", "-p", str(pid), "-o", str(out), "-f", "raw",
           "-r", "200", "--nonblocking", *(["--gil"] if gil else [])]  # fmt: skip
    sampler = subprocess.Popen(spy)
    time.sleep(1)  # py-spy attaches
    try:
        yield
    finally:
        sampler.send_signal(2)
        sampler.wait()
