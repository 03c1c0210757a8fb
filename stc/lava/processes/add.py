"""Residual Add with alignment delays, as a fixed-point Lava process.

In Lava every synapse layer adds one step of delay, so the two branches of a residual block
(``x + F(x)``) arrive out of step: F's branch is late by its number of synapse layers. The
:class:`DelayedAdd` process delays each input by its own number of steps and sums graded
payloads: ``out[t] = a[t - delay_a] + b[t - delay_b]`` (int32, zero before the first value),
sent in the same step (no extra latency). :func:`alignment_delays` computes the delays from
the branch latencies. On Loihi 2 this is a dendritic sum of graded spikes on a neurocore
(axon delays realise the alignment); here it is a Python process model, tag 'fixed_pt'.
Source: Spikformer/SDT residuals add spikes (shared/reference/attention.md).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ..compat import import_lava

import_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402


def alignment_delays(latencies: list[int]) -> list[int]:
    """Delays that align branches with the given latencies (steps): max(lat) - lat_i.

    Raises:
        ValueError: empty list or a negative latency.
    """
    if not latencies or any(int(x) < 0 for x in latencies):
        raise ValueError(f"latencies must be a non-empty list of ints >= 0, got {latencies}")
    top = max(int(x) for x in latencies)
    return [top - int(x) for x in latencies]


class DelayedAdd(AbstractProcess):
    """out[t] = a[t - delay_a] + b[t - delay_b]; ports ``a_in``, ``b_in``, ``out`` of ``shape``.

    Raises:
        ValueError: negative delays.
    """

    def __init__(self, *, shape: tuple[int, ...], delay_a: int = 0, delay_b: int = 0) -> None:
        super().__init__(shape=shape, delay_a=delay_a, delay_b=delay_b)
        if delay_a < 0 or delay_b < 0:  # after __init__: Lava's __del__ needs it
            raise ValueError(f"delays must be >= 0, got delay_a={delay_a}, delay_b={delay_b}")
        self.a_in = InPort(shape=shape)
        self.b_in = InPort(shape=shape)
        self.out = OutPort(shape=shape)


@implements(proc=DelayedAdd, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDelayedAddFixed(PyLoihiProcessModel):
    """Fixed-point model: int32 graded payloads, FIFO delays."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    b_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        shape = proc_params["shape"]
        self._qa = deque([np.zeros(shape, np.int32)] * proc_params["delay_a"])
        self._qb = deque([np.zeros(shape, np.int32)] * proc_params["delay_b"])

    def run_spk(self) -> None:
        self._qa.append(self.a_in.recv().astype(np.int32))
        self._qb.append(self.b_in.recv().astype(np.int32))
        self.out.send(self._qa.popleft() + self._qb.popleft())
