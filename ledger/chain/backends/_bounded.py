"""EVM runs with a wall-clock budget and a gas cap, for reads that anyone may ask for.

A public node caps what an ``eth_call`` may cost (geth's ``--rpc.gascap`` and
``--rpc.evmtimeout``). py-evm runs in Python, where an endless loop given the block's 30 M gas
runs for seconds and a pairing precompile for much longer per gas, so both bounds are needed:

1. **Time.** :func:`bounded_chain_class` runs the chain's own VMs with one change: before every
   instruction that can repeat work (``JUMP``, ``JUMPI``, the ``CALL`` and ``CREATE`` families)
   and before every precompile, the current thread's deadline (:func:`evm_deadline`) is checked,
   and past it :class:`~ledger.chain.backends.reads.ReadTimeout` aborts the run. Straight-line code
   is at most a contract long, so nothing else can run for long between two checks; a single
   precompile can, which is why the reader process is also killed past its budget
   (``_readers.py``).
2. **Gas.** :func:`capped_gas_estimate` is py-evm's binary search with its top bounded by the
   call's own gas (itself at most the cap) instead of the block's gas limit.

Only the reader's VMs are bounded: the chain that writes blocks runs py-evm unchanged.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from eth.abc import ComputationAPI, SignedTransactionAPI, StateAPI, VirtualMachineAPI
from eth.chains.base import MiningChain
from eth.estimators.gas import _get_computation_error
from eth.exceptions import OutOfGas
from eth.vm import opcode_values as op
from eth.vm.spoof import SpoofTransaction

from ledger.chain.backends.reads import ReadTimeout
from ledger.errors import LedgerError

__all__ = [
    "GasCapExceeded",
    "bounded_chain_class",
    "capped_gas_estimate",
    "check_deadline",
    "evm_deadline",
]

# The instructions after which an EVM run can do the same work again.
_REPEATING = (
    op.JUMP, op.JUMPI, op.CALL, op.CALLCODE, op.DELEGATECALL, op.STATICCALL, op.CREATE,
    op.CREATE2,
)  # fmt: skip
# py-evm's own estimate steps by the intrinsic gas (eth.estimators.gas, the default estimator).
_ESTIMATE_TOLERANCE = 21_000

_local = threading.local()


class GasCapExceeded(LedgerError):
    """A gas estimate found no amount up to the cap at which the call succeeds."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"gas required exceeds allowance ({cap})", cap=cap)
        self.cap = cap


@contextmanager
def evm_deadline(seconds: float) -> Iterator[None]:
    """Bound every bounded-VM run on this thread inside the block to ``seconds`` in all."""
    _local.deadline, _local.budget = time.monotonic() + seconds, seconds
    try:
        yield
    finally:
        _local.deadline = None


def check_deadline() -> None:
    """Raise :class:`ReadTimeout` once this thread's :func:`evm_deadline` has passed (no-op
    outside one); also called between blocks while logs are scanned."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise ReadTimeout(_local.budget)


class _Checked:
    """An opcode that checks the deadline first; otherwise the very same opcode."""

    __slots__ = ("__wrapped__", "gas_cost", "mnemonic")

    def __init__(self, opcode: Any) -> None:
        self.__wrapped__ = opcode
        self.mnemonic, self.gas_cost = opcode.mnemonic, opcode.gas_cost

    def __call__(self, computation: ComputationAPI) -> Any:
        check_deadline()
        return self.__wrapped__(computation)


def _checked_precompile(
    precompile: Callable[[ComputationAPI], ComputationAPI],
) -> Callable[[ComputationAPI], ComputationAPI]:
    @functools.wraps(precompile)
    def checked(computation: ComputationAPI) -> ComputationAPI:
        check_deadline()
        return precompile(computation)

    return checked


@functools.cache
def _bounded_vm_class(vm_class: type[VirtualMachineAPI]) -> type[VirtualMachineAPI]:
    state_class = vm_class.get_state_class()
    computation_class = state_class.computation_class
    opcodes = dict(computation_class.opcodes)
    for value in _REPEATING:
        if value in opcodes:
            opcodes[value] = _Checked(opcodes[value])
    precompiles = {
        address: _checked_precompile(function)
        for address, function in computation_class.get_precompiles().items()
    }
    computation = type(
        f"Bounded{computation_class.__name__}",
        (computation_class,),
        {"opcodes": opcodes, "_precompiles": precompiles, "__module__": __name__},
    )
    state = type(
        f"Bounded{state_class.__name__}",
        (state_class,),
        {"computation_class": computation, "__module__": __name__},
    )
    return type(
        f"Bounded{vm_class.__name__}",
        (vm_class,),
        {"_state_class": state, "__module__": __name__},
    )


@functools.cache
def bounded_chain_class(chain_class: type[MiningChain]) -> type[MiningChain]:
    """``chain_class`` (same id, forks, header rules) whose VMs honour :func:`evm_deadline`."""
    vm_configuration = tuple(
        (block_number, _bounded_vm_class(vm_class))
        for block_number, vm_class in chain_class.vm_configuration
    )
    name = f"Bounded{chain_class.__name__}"
    namespace = {"vm_configuration": vm_configuration, "__module__": __name__, "__qualname__": name}
    return type(name, (chain_class,), namespace)


def capped_gas_estimate(state: StateAPI, transaction: SignedTransactionAPI, cap: int) -> int:
    """py-evm's estimate (``binary_gas_search`` stepping by the intrinsic gas), searching up to
    ``min(transaction gas, cap, block gas limit)`` instead of the block's gas limit.

    Raises the call's own error when it fails for another reason than gas, and
    :class:`GasCapExceeded` when it runs out of gas even at the top.
    """
    top = min(transaction.gas, cap, state.gas_limit)
    low = transaction.intrinsic_gas
    if _get_computation_error(state, SpoofTransaction(transaction, gas=low, gas_price=0)) is None:
        return low
    error = _get_computation_error(state, SpoofTransaction(transaction, gas=top, gas_price=0))
    if error is not None:
        if isinstance(error, OutOfGas):
            raise GasCapExceeded(top) from error
        raise error
    while top - low > _ESTIMATE_TOLERANCE:
        middle = (top + low) // 2
        if _get_computation_error(state, SpoofTransaction(transaction, gas=middle)) is None:
            top = middle
        else:
            low = middle
    return top
