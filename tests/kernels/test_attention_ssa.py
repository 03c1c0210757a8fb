"""SSA op: fused Triton forward vs the official-order reference and an independent formula."""

from __future__ import annotations

import pytest
import torch
from stc.kernels._backend import triton_interpreted
from stc.kernels.attention import ssa, ssa_reference
from stc.kernels.attention.ssa import triton_ssa

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def spikes(shape, graded=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    if graded:
        x = torch.randint(0, 5, shape, generator=g).float()
    else:
        x = (torch.rand(shape, generator=g) < 0.3).float()
    return x.to(DEVICE)


def formula(q, k, v, scale):
    """Independent formula with the other association: ((Q K^T) V) * s, in float64."""
    q, k, v = q.double(), k.double(), v.double()
    return torch.einsum("...nm,...md->...nd", torch.einsum("...nd,...md->...nm", q, k), v) * scale


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("shape", [(2, 2, 2, 19, 12), (1, 1, 3, 5, 16)])
def test_kernel_equals_reference_exactly(graded, shape):
    q, k, v = (spikes(shape, graded, seed=i) for i in range(3))
    out = ssa(q, k, v, backend="triton" if DEVICE == "cuda" or triton_interpreted() else "torch")
    assert torch.equal(out, ssa_reference(q, k, v))
    assert torch.equal(out.double(), formula(q, k, v, 0.125))


def test_auto_runs_kernel_and_fp16_is_exact(monkeypatch):
    launched = []
    monkeypatch.setattr(triton_ssa._ssa_fwd_kernel, "pre_run_hooks",
                        [lambda *a, **kw: launched.append(1)])
    q, k, v = (spikes((2, 1, 2, 9, 8), seed=i).half() for i in range(3))
    out = ssa(q, k, v, scale=0.25)
    assert launched == [1], "backend='auto' did not launch the Triton SSA kernel"
    assert out.dtype == torch.float16
    assert torch.equal(out.double(), formula(q, k, v, 0.25))


def test_gradients_match_autograd_of_formula():
    q, k, v = (spikes((2, 1, 2, 7, 6), seed=i).requires_grad_() for i in range(3))
    out = ssa(q, k, v, scale=0.125)
    assert "SSAFunction" in type(out.grad_fn).__name__
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    grads = torch.autograd.grad(out, (q, k, v), g)
    qd, kd, vd = (x.detach().double().requires_grad_() for x in (q, k, v))
    ref = torch.autograd.grad(formula(qd, kd, vd, 0.125), (qd, kd, vd), g.double())
    for got, want in zip(grads, ref):
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad, err", [
    (lambda q: (q[0], q, q), ValueError),            # rank 4
    (lambda q: (q, q[:, :, :, :3], q), ValueError),   # shape mismatch
    (lambda q: (q.long(), q.long(), q.long()), TypeError),
    (lambda q: ("q", q, q), TypeError),
    (lambda q: (q * float("nan"), q, q), ValueError),
])
def test_bad_input(bad, err):
    q = spikes((2, 1, 2, 5, 4))
    with pytest.raises(err, match="q|k|v"):
        ssa(*bad(q), backend="torch")


def test_bad_scale_and_backend():
    q = spikes((2, 1, 2, 5, 4))
    with pytest.raises(TypeError, match="scale"):
        ssa(q, q, q, scale="x")
    with pytest.raises(ValueError, match="backend"):
        ssa(q, q, q, backend="cuda")
