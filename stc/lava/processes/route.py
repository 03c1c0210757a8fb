"""Axon routing as a fixed-point Lava process: a fixed permutation of a flat spike vector.

``out[i] = in[perm[i]]``, sent in the same step (no latency). On Loihi 2 a permutation is
free: it is how output axons are wired to the next layer's synapses. In simulation it
realises layout changes between IR tensors (``ToTokens``: [C, H, W] -> [N = H*W, D = C]).
"""

from __future__ import annotations

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


class Route(AbstractProcess):
    """Permute a flat vector: ports ``s_in`` and ``s_out`` of shape (len(perm),).

    Raises:
        ValueError: ``perm`` is not a permutation of 0..n-1.
    """

    def __init__(self, *, perm: np.ndarray) -> None:
        perm = np.asarray(perm, dtype=np.int64)
        super().__init__(perm=perm)
        if perm.ndim != 1 or not np.array_equal(np.sort(perm), np.arange(perm.size)):
            raise ValueError("perm must be a permutation of 0..n-1")
        self.s_in = InPort(shape=(perm.size,))
        self.s_out = OutPort(shape=(perm.size,))


@implements(proc=Route, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRouteFixed(PyLoihiProcessModel):
    """Fixed-point model: int32 payloads, gathered by ``perm``."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._perm = np.asarray(proc_params["perm"], dtype=np.int64)

    def run_spk(self) -> None:
        self.s_out.send(np.asarray(self.s_in.recv()).astype(np.int32)[self._perm])
