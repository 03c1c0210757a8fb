"""SDSA op: fused Triton forward vs the official-order reference, an explicit LIF loop and
SpikingJelly's LIFNode (peer library)."""

from __future__ import annotations

import pytest
import torch
from stc.kernels.attention import sdsa, sdsa_reference
from stc.kernels.attention.sdsa import triton_sdsa

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def spikes(shape, graded=False, seed=0, p=0.3):
    g = torch.Generator().manual_seed(seed)
    if graded:
        x = torch.randint(0, 3, shape, generator=g).float()
    else:
        x = (torch.rand(shape, generator=g) < p).float()
    return x.to(DEVICE)


class _Heaviside(torch.autograd.Function):
    """Step forward, sigmoid surrogate (alpha 4) backward: SpikingJelly's Sigmoid."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(4.0 * x)
        return g * 4.0 * s * (1 - s)


def formula(q, k, v, v_th):
    """Independent SDSA: explicit tau = 2 LIF loop (H = V/2 + X/2, hard reset, detached)."""
    x = torch.einsum("tbhnd,tbhnd->tbhd", k, v)
    mem = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = 0.5 * mem + 0.5 * x[t]
        s = _Heaviside.apply(h - v_th)
        mem = h * (1 - s.detach())
        out.append(q[t] * s.unsqueeze(-2))
    return torch.stack(out)


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("shape", [(5, 2, 2, 19, 12), (3, 1, 1, 4, 40)])
def test_kernel_equals_reference_exactly(graded, shape):
    q, k, v = (spikes(shape, graded, seed=i) for i in range(3))
    out = sdsa(q, k, v, backend="triton")
    ref = sdsa_reference(q, k, v)
    assert torch.equal(out, ref)
    assert torch.equal(out, formula(q, k, v, 0.5))
    assert out.sum() > 0 and (out == 0).any(), "degenerate test data: all or no spikes"


def test_talking_heads_lif_matches_spikingjelly():
    from spikingjelly.activation_based import neuron

    q, k, v = (spikes((6, 2, 2, 5, 8), seed=i, p=0.15) for i in range(3))
    lif = neuron.LIFNode(tau=2.0, v_threshold=0.7, detach_reset=True, step_mode="m")
    kv = lif((k * v).sum(dim=-2, keepdim=True).cpu()).to(DEVICE)
    assert torch.equal(sdsa(q, k, v, v_th=0.7, backend="triton"), q * kv)


def test_auto_runs_kernel(monkeypatch):
    launched = []
    monkeypatch.setattr(triton_sdsa._sdsa_out_kernel, "pre_run_hooks",
                        [lambda *a, **kw: launched.append(1)])
    q, k, v = (spikes((3, 1, 2, 6, 8), seed=i).half() for i in range(3))
    out = sdsa(q, k, v)
    assert launched == [1], "backend='auto' did not launch the Triton SDSA kernel"
    assert out.dtype == torch.float16
    assert torch.equal(out.float(), formula(q.float(), k.float(), v.float(), 0.5))


def test_gradients_match_autograd_of_formula():
    shape = (4, 1, 2, 6, 8)
    q, k, v = (spikes(shape, seed=i, p=0.5).requires_grad_() for i in range(3))
    out = sdsa(q, k, v)
    assert "SDSAFunction" in type(out.grad_fn).__name__
    g = torch.randn(shape, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    grads = torch.autograd.grad(out, (q, k, v), g)
    qd, kd, vd = (x.detach().double().requires_grad_() for x in (q, k, v))
    ref = torch.autograd.grad(formula(qd, kd, vd, 0.5), (qd, kd, vd), g.double())
    for got, want in zip(grads, ref):
        assert want.abs().sum() > 0
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_bad_input():
    q = spikes((2, 1, 2, 5, 4))
    with pytest.raises(ValueError, match="rank 5"):
        sdsa(q[0], q[0], q[0])
    with pytest.raises(TypeError, match="v_th"):
        sdsa(q, q, q, v_th=None)
    with pytest.raises(ValueError, match="one shape"):
        sdsa(q, q, q[:1])
