"""Kernel-side host syncs: the kernel ops and the attention modules read no tensor data back
on the forward path when their tensors are on a GPU.

Under the interpreter on CPU there is no device, so the test records every call that would
synchronise a CUDA tensor (``.item()``, ``bool()``, ``float()``, ``int()``, ``.tolist()``,
``.cpu()``, ``.numpy()``) and attributes it to the innermost stc frame. Calls made inside
Triton's interpreter (it emulates the device) and by ``stc.errors`` (argument checks, made
sync-free on CUDA by issue 11's other half) are not counted. The value checks that do run on
CPU tensors by design (``validate=None``) are switched to their GPU behaviour by patching
``should_validate`` to "not on a CPU", exactly what a CUDA tensor gives.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from stc.kernels.alif import alif_multistep
from stc.kernels.attention import _launch, dsformer, sdsa, ssa
from stc.kernels.cuba_fixed import cuba_lif_fixed
from stc.kernels.cuba_fixed import op as cuba_fixed_op
from stc.kernels.cuba_lif import cuba_lif_multistep
from stc.kernels.lif import lif_multistep

from stc.nn.attention import SDSA, SSA, DSFormerAttention

ROOT = Path(__file__).resolve().parents[2]
OWNED = (ROOT / "kernels", ROOT / "stc" / "nn")
SYNC_METHODS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "cpu",
                "numpy")


class SyncRecorder:
    """Patches torch.Tensor's reading methods; ``reads`` lists (method, file:line)."""

    def __init__(self, monkeypatch):
        self.reads: list[str] = []
        for name in SYNC_METHODS:
            orig = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, orig))

    def _wrap(self, name, orig):
        def method(t, *a, **k):
            self._record(name)
            return orig(t, *a, **k)
        return method

    def _record(self, name):
        f = sys._getframe(2)
        while f is not None:
            path = Path(f.f_code.co_filename)
            if "triton" in path.parts:
                return  # the interpreter emulating the device
            if path.is_relative_to(ROOT) and "tests" not in path.parts:
                if path == ROOT / "stc" / "errors.py":
                    return
                if any(path.is_relative_to(p) for p in OWNED):
                    self.reads.append(f"{name} at {path.relative_to(ROOT)}:{f.f_lineno}")
                return
            f = f.f_back


@pytest.fixture
def on_gpu(monkeypatch):
    """should_validate as for CUDA tensors: checks run only with validate=True."""
    fake = lambda validate, *t: bool(validate)  # noqa: E731
    monkeypatch.setattr(_launch, "should_validate", fake)
    monkeypatch.setattr(cuba_fixed_op, "should_validate", fake)
    return SyncRecorder(monkeypatch)


def spikes(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < 0.3).float()


def test_neuron_ops_read_nothing(on_gpu):
    x = torch.randn(4, 2, 33, generator=torch.Generator().manual_seed(0)) + 0.8
    lif_multistep(x, backend="triton")
    alif_multistep(x, backend="triton")
    cuba_lif_multistep(x * 3, backend="triton")
    a = torch.randint(-100, 300, (4, 2, 33), dtype=torch.int32)
    cuba_lif_fixed(a, du=410, dv=820, vth_mant=50, bias_mant=3, bias_exp=6,
                   backend="triton")
    assert on_gpu.reads == []


def test_attention_ops_read_nothing_with_a_declared_range(on_gpu):
    q, k, v = (spikes((2, 1, 2, 9, 16), i) for i in range(3))
    ssa(q, k, v, max_value=1, backend="triton")
    sdsa(q, k, v, backend="triton")
    dsformer(q, k, v, window_size=2, sparse_ratio=0.3, max_value=1, backend="triton")
    dsformer(q, k, v, sparse_ratio=0.3, backend="triton")      # unknown range: bisection
    assert on_gpu.reads == []


@pytest.mark.parametrize("make", [
    lambda: SSA(32, 2), lambda: SDSA(32, 2),
    lambda: DSFormerAttention(32, 2, window_size=2, sparse_ratio=0.5),
    lambda: DSFormerAttention(32, 2, spike_mode="graded", sparse_ratio=0.5),
])
def test_attention_modules_read_nothing(on_gpu, make):
    m = make().eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d):
            nn.init.constant_(mod.weight, 3.0)
    x = torch.randn(2, 1, 9, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = m(x)
    assert on_gpu.reads == []
    assert out.shape == x.shape


def test_recorder_catches_a_read(on_gpu):
    """The recorder is live: a value check forced on (validate=True) is seen as a read."""
    q = spikes((2, 1, 1, 5, 16), 3)
    ssa(q, q, q, max_value=1, validate=True, backend="triton")
    assert any("kernels/attention/_launch.py" in r for r in on_gpu.reads), on_gpu.reads
