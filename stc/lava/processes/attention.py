"""SSA (Spikformer) and DSFormer attention as fixed-point Lava processes (Python models).

Neither maps onto neurocores: the products Q K^T V need multiplications of spike counts and
(DSFormer) a per-row top-k, so on Loihi 2 these run on the host / embedded x86 cores; here
they are ``PyLoihiProcessModel``s with tag 'fixed_pt' that Loihi2SimCfg(select_tag='fixed_pt')
selects. The mapping marks them "host/embedded core" (stc.lava.mapping.CUSTOM_PROCESSES).

Definition (shared/reference/attention.md, "DSFormer attention: stc's definition"): per head,
within temporal windows of ``window_size`` steps (the last may be shorter) every (t, n) is a
token; S = Q_w K_w^T (exact integer coincidence counts); each query row keeps the scores
>= its k-th largest, k = max(1, ceil(sparse_ratio * w N)) (ties kept); O = S_sparse V_w.
SSA is the case window_size = 1, sparse_ratio = 1: O = Q (K^T V). The processes emit the
*integer* O (graded payload); the 0.125 scale is a power of two that the following LIF folds
into its threshold (v_th / scale), so nothing is rounded here.

Timing: a window is only complete at its last step, so the output for input step t is sent at
step t + window_size (latency ``window_size``; 1 for SSA). Samples of ``time_steps`` steps are
processed back to back; windows never cross a sample boundary.
Ports: ``q_in``, ``k_in``, ``v_in`` and ``out`` of shape (N, D) with D = H * d (head-major).
"""

from __future__ import annotations

import math
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


def keep_count(sparse_ratio: float, length: int) -> int:
    """Keys kept per query row: max(1, ceil(sparse_ratio * length)) (1e-9 float slack)."""
    return max(1, math.ceil(sparse_ratio * length - 1e-9))


def window_attention_int(q: np.ndarray, k: np.ndarray, v: np.ndarray, num_heads: int,
                         sparse_ratio: float = 1.0) -> np.ndarray:
    """Integer sparse attention of one window: q, k, v [w, N, D] -> O [w, N, D] (int64).

    Per head h (channels h*d .. h*d+d-1): tokens are (t, n) t-major; S = Q K^T; keep S >= the
    row's k-th largest value; O = S_sparse V.
    """
    w, n, dim = q.shape
    d = dim // num_heads
    out = np.zeros((w, n, dim), np.int64)
    kk = keep_count(sparse_ratio, w * n)
    for h in range(num_heads):
        sl = slice(h * d, (h + 1) * d)
        qh, kh, vh = (x[:, :, sl].reshape(w * n, d).astype(np.int64) for x in (q, k, v))
        s = qh @ kh.T  # [wN, wN]
        if kk < s.shape[1]:
            kth = -np.partition(-s, kk - 1, axis=1)[:, kk - 1: kk]
            s = np.where(s >= kth, s, 0)
        out[:, :, sl] = (s @ vh).reshape(w, n, d)
    return out


class SpikeAttentionProcess(AbstractProcess):
    """Windowed top-k spike attention (DSFormer; SSA when window_size = sparse_ratio = 1).

    Args:
        shape: (N, D) tokens x channels. num_heads: H, D % H == 0.
        time_steps: T of one sample (windows restart every T steps).
        window_size: steps per window (>= 1). sparse_ratio: in (0, 1].
        offset: 0-based step at which the first sample's first q/k/v arrive (its depth in a
            pipelined network); windows are counted from there.
        gain: integer factor on O (stc.passes.quantize's unit for the next LIF).
        flat: ports of shape (N * D,) (row-major [N, D]) instead of (N, D).

    Raises:
        ValueError: bad shape, heads, window or ratio.
    """

    def __init__(self, *, shape: tuple[int, int], num_heads: int, time_steps: int,
                 window_size: int = 1, sparse_ratio: float = 1.0, offset: int = 0,
                 gain: int = 1, flat: bool = False) -> None:
        super().__init__(shape=shape, num_heads=num_heads, time_steps=time_steps,
                         window_size=window_size, sparse_ratio=sparse_ratio, offset=offset,
                         gain=gain, flat=flat)
        # checked after AbstractProcess.__init__: Lava's __del__ needs an initialised process
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"shape must be (N, D) with N, D >= 1, got {shape}")
        if num_heads < 1 or shape[1] % num_heads:
            raise ValueError(f"num_heads must divide D = {shape[1]}, got {num_heads}")
        if time_steps < 1 or window_size < 1:
            raise ValueError(f"time_steps and window_size must be >= 1, got {time_steps}, "
                             f"{window_size}")
        if not 0 < sparse_ratio <= 1:
            raise ValueError(f"sparse_ratio must be in (0, 1], got {sparse_ratio}")
        if offset < 0 or gain < 1:
            raise ValueError(f"offset must be >= 0 and gain >= 1, got {offset}, {gain}")
        port = (shape[0] * shape[1],) if flat else tuple(shape)
        self.q_in = InPort(shape=port)
        self.k_in = InPort(shape=port)
        self.v_in = InPort(shape=port)
        self.out = OutPort(shape=port)
        self.latency = window_size


class SSAProcess(SpikeAttentionProcess):
    """Spikformer SSA, O = Q (K^T V) per head (integer, pre-scale); latency 1 step."""

    def __init__(self, *, shape: tuple[int, int], num_heads: int, time_steps: int,
                 offset: int = 0, gain: int = 1, flat: bool = False) -> None:
        super().__init__(shape=shape, num_heads=num_heads, time_steps=time_steps,
                         offset=offset, gain=gain, flat=flat)


class DSFormerProcess(SpikeAttentionProcess):
    """stc's DSFormer attention (windowed top-k); latency ``window_size`` steps."""


class _SpikeAttentionFixedBase(PyLoihiProcessModel):
    """Integer model: buffers the current window, computes it when complete, emits each
    step's output ``window_size`` steps after its input."""

    q_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    k_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    v_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        p = proc_params
        self._shape = p["shape"]
        self._heads, self._T = p["num_heads"], p["time_steps"]
        self._w, self._ratio = p["window_size"], p["sparse_ratio"]
        self._offset, self._gain = p.get("offset", 0), p.get("gain", 1)
        self._port = (self._shape[0] * self._shape[1],) if p.get("flat") else self._shape
        self._buf: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending: deque[np.ndarray] = deque()  # computed outputs not yet due
        self._due: deque[tuple[int, np.ndarray]] = deque()

    def run_spk(self) -> None:
        t = self.time_step - 1  # 0-based global step
        self._buf.append(tuple(np.asarray(p.recv()).reshape(self._shape)
                               for p in (self.q_in, self.k_in, self.v_in)))
        local = (t - self._offset) % self._T
        if (local + 1) % self._w == 0 or local + 1 == self._T:  # window complete
            q, k, v = (np.stack(x) for x in zip(*self._buf))
            o = window_attention_int(q, k, v, self._heads, self._ratio) * self._gain
            start = t - len(self._buf) + 1
            for j in range(len(self._buf)):
                self._due.append((start + j + self._w, o[j]))
            self._buf = []
        if self._due and self._due[0][0] == t:
            self.out.send(self._due.popleft()[1].astype(np.int32).reshape(self._port))
        else:
            self.out.send(np.zeros(self._port, np.int32))


@implements(proc=SSAProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySSAFixed(_SpikeAttentionFixedBase):
    """Integer SSA model (Lava binds models to exact process classes)."""


@implements(proc=DSFormerProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDSFormerFixed(_SpikeAttentionFixedBase):
    """Integer DSFormer model (Lava binds models to exact process classes)."""


@implements(proc=SpikeAttentionProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeAttentionFixed(_SpikeAttentionFixedBase):
    """Integer model of the generic windowed top-k attention process."""
