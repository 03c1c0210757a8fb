"""Max pooling of graded values (a membrane stream) as a fixed-point Lava process.

``out[i] = max_j in[idx[i, j]]`` over the window's valid indices (``idx`` -1 = padding, which
never wins, as torch's max_pool2d pads with -inf), sent in the same step (no latency). It
realises Spike-driven Transformer's max pool of membrane values (MS-SPS stage 3: the pool
sits between the convolution and the membrane shortcut, so it pools integer synaptic sums,
not spikes). On Loihi 2 this is a max over dendritic inputs, which Loihi's neurocores do not
compute natively; in simulation it is a Python process model, tag 'fixed_pt'.
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


def window_indices(in_shape: tuple[int, int, int], kernel_size, stride, padding) -> np.ndarray:
    """idx [C * Ho * Wo, kH * kW]: flat row-major input index of each window element of each
    output (C, Ho, Wo row-major), -1 where the window covers padding."""
    C, H, W = in_shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    idx = np.full((C, Ho, Wo, kh * kw), -1, np.int64)
    for c in range(C):
        for i in range(Ho):
            for j in range(Wo):
                for a in range(kh):
                    for b in range(kw):
                        y, x = i * sh - ph + a, j * sw - pw + b
                        if 0 <= y < H and 0 <= x < W:
                            idx[c, i, j, a * kw + b] = (c * H + y) * W + x
    return idx.reshape(C * Ho * Wo, kh * kw)


class MaxPool(AbstractProcess):
    """Windowed max of a flat integer vector: ``s_in`` (n_in,), ``s_out`` (len(idx),).

    Raises:
        ValueError: ``idx`` not 2-D, an index outside [-1, n_in), or a window with no valid
            element.
    """

    def __init__(self, *, idx: np.ndarray, n_in: int) -> None:
        idx = np.asarray(idx, dtype=np.int64)
        if idx.ndim != 2 or idx.min() < -1 or idx.max() >= n_in or (idx.max(1) < 0).any():
            raise ValueError("idx must be [n_out, window] of indices in [-1, n_in) with a "
                             "valid element per window")
        super().__init__(idx=idx)
        self.s_in = InPort(shape=(int(n_in),))
        self.s_out = OutPort(shape=(idx.shape[0],))


@implements(proc=MaxPool, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyMaxPoolFixed(PyLoihiProcessModel):
    """Fixed-point model: int32 payloads (24-bit graded values)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        idx = np.asarray(proc_params["idx"], dtype=np.int64)
        self._idx = np.where(idx < 0, 0, idx)
        self._pad = idx < 0

    def run_spk(self) -> None:
        x = np.asarray(self.s_in.recv()).astype(np.int64)
        w = np.where(self._pad, np.iinfo(np.int64).min, x[self._idx])
        self.s_out.send(w.max(axis=1).astype(np.int32))
