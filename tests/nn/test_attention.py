"""Attention modules: forward vs the official code's structure (written here with conv1x1 /
BatchNorm over [T*B, D, N] and SpikingJelly LIF nodes as the peer neuron), shapes, errors,
gradient flow, DSFormer == SSA at window 1 / ratio 1, and the graded neuron's formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import neuron

from stc.nn import SDSA, SSA, DSFormerAttention, GradedLIF


def sj_lif(v_th=1.0):
    return neuron.LIFNode(tau=2.0, v_threshold=v_th, detach_reset=True, step_mode="m")


def tokens(T=3, B=2, N=7, D=12, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, N, D, generator=g) * scale + 0.5


def prepare(module, seed=0):
    """Exact-arithmetic set-up: weights on a 1/16 grid, random BN running stats, eval mode."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        with torch.no_grad():
            if name.endswith("bn.weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_(torch.randint(-8, 9, p.shape, generator=g).float() / 16)
    for name, b in module.named_buffers():
        if name.endswith("running_mean"):
            b.copy_(torch.randn(b.shape, generator=g) * 0.1)
        elif name.endswith("running_var"):
            b.copy_(torch.rand(b.shape, generator=g) * 0.2 + 0.2)
    return module.eval()


def conv_bn(x_tbdn, linear, bn):
    """Official layout: Conv1d(k=1) on [T*B, D, N] then BatchNorm1d over D (eval)."""
    T, B, D, N = x_tbdn.shape
    w = linear.weight.unsqueeze(-1)
    y = F.conv1d(x_tbdn.flatten(0, 1), w, linear.bias)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return y.reshape(T, B, -1, N)


def heads(x_tbdn, H):
    T, B, D, N = x_tbdn.shape
    return x_tbdn.transpose(-1, -2).reshape(T, B, N, H, D // H).permute(0, 1, 3, 2, 4)


def official_ssa(m, x, H):
    """Spikformer imagenet/model.py SSA forward, structure re-written on [T, B, D, N]."""
    xt = x.transpose(-1, -2)
    q, k, v = (heads(sj_lif()(conv_bn(xt, getattr(m, f"{n}_linear"), getattr(m, f"{n}_bn"))), H)
               for n in "qkv")
    a = (q @ (k.transpose(-2, -1) @ v)) * 0.125
    T, B, _, N, _ = a.shape
    a = sj_lif(0.5)(a.transpose(3, 4).reshape(T, B, -1, N))
    return sj_lif()(conv_bn(a, m.proj_linear, m.proj_bn)).transpose(-1, -2)


def official_sdsa(m, x, H):
    """SDT v1 MS_SSA_Conv forward (without its residual), re-written on [T, B, D, N]."""
    xt = sj_lif()(x.transpose(-1, -2))
    q, k, v = (heads(sj_lif()(conv_bn(xt, getattr(m, f"{n}_conv"), getattr(m, f"{n}_bn"))), H)
               for n in "qkv")
    kv = sj_lif(0.5)((k * v).sum(dim=-2, keepdim=True))
    a = q * kv
    T, B, _, N, _ = a.shape
    return conv_bn(a.transpose(3, 4).reshape(T, B, -1, N), m.proj_conv, m.proj_bn) \
        .transpose(-1, -2)


def test_ssa_equals_official_structure():
    m = prepare(SSA(12, 3, qkv_bias=True))
    x = (tokens(seed=1) > 0.5).float()
    out = m(x)
    assert out.shape == x.shape
    assert torch.equal(out, official_ssa(m, x, 3))
    assert 0 < out.mean() < 1, "degenerate test data: no or all spikes"


def test_sdsa_equals_official_structure():
    m = prepare(SDSA(12, 3), seed=2)
    x = tokens(seed=3)
    out = m(x)
    assert out.shape == x.shape
    assert torch.equal(out, official_sdsa(m, x, 3))
    assert m.head_lif is m.shortcut_lif


def test_dsformer_window1_ratio1_equals_ssa():
    ssa_m = prepare(SSA(12, 2), seed=4)
    ds = DSFormerAttention(12, 2).eval()
    ds.load_state_dict(ssa_m.state_dict())
    x = tokens(seed=5)
    assert torch.equal(ds(x), ssa_m(x))
    sparse = DSFormerAttention(12, 2, window_size=2, sparse_ratio=0.2).eval()
    sparse.load_state_dict(ssa_m.state_dict())
    assert sparse(x).shape == x.shape


@pytest.mark.parametrize("make", [
    lambda: SSA(16, 2, scale=0.5),
    lambda: SDSA(16, 2),
    lambda: DSFormerAttention(16, 2, window_size=2, sparse_ratio=0.5, scale=0.5),
    lambda: DSFormerAttention(16, 2, spike_mode="graded", window_size=2, sparse_ratio=0.5,
                              scale=0.25),
])
def test_gradient_reaches_every_parameter(make):
    torch.manual_seed(0)
    m = make().train()
    with torch.no_grad():   # wide BN outputs so that every LIF layer fires (rate ~ 0.25)
        for name, p in m.named_parameters():
            if name.endswith("bn.weight"):
                p.fill_(3.0)
    x = tokens(T=3, B=2, N=10, D=16, seed=6).requires_grad_()
    out = m(x)
    assert out.shape == x.shape
    (out * torch.randn_like(out)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for {name}"
    assert x.grad.abs().sum() > 0


def test_graded_mode_feeds_integer_counts():
    m = DSFormerAttention(8, 2, spike_mode="graded", max_level=3).eval()
    assert isinstance(m.q_lif, GradedLIF) and m.q_lif.max_level == 3
    q, k, v = m._qkv(tokens(T=2, B=1, N=5, D=8, seed=7, scale=4.0))
    for t in (q, k, v):
        assert torch.equal(t, t.round()) and t.min() >= 0 and t.max() <= 3
    assert q.max() > 1, "graded spikes never exceeded 1: test data too weak"


def test_graded_lif_formula_and_straight_through_gradient():
    x = tokens(T=4, B=2, N=3, D=5, seed=8, scale=3.0).requires_grad_()
    s = GradedLIF(tau=2.0, max_level=4)(x)
    v = torch.zeros_like(x[0])
    want, gate = [], []
    for t in range(4):
        h = v + (x[t].detach() - v) / 2.0
        st = torch.clamp(torch.round(h), 0, 4)
        want.append(st)
        gate.append(((h >= 0) & (h <= 4)).float())
        v = h - st
    assert torch.equal(s, torch.stack(want))
    s.sum().backward()
    # straight-through: dS[t]/dX[t] = gate / tau; the reset is detached, so V carries
    # dS[t]/dX[t-1] = gate[t] * (1 - 1/tau) * dH[t-1]/dX[t-1] ... check the last step exactly
    assert torch.equal(x.grad[-1], gate[-1] / 2.0)


@pytest.mark.parametrize("make, match", [
    (lambda: SSA(10, 3), "10"),
    (lambda: SDSA(12, 5), "12"),
    (lambda: DSFormerAttention(12, 5), "12"),
    (lambda: DSFormerAttention(12, 2, sparse_ratio=0.0), "sparse_ratio"),
    (lambda: DSFormerAttention(12, 2, sparse_ratio=1.2), "1.2"),
    (lambda: DSFormerAttention(12, 2, window_size=0), "window_size"),
    (lambda: DSFormerAttention(12, 2, spike_mode="ternary"), "ternary"),
    (lambda: GradedLIF(max_level=0), "max_level"),
])
def test_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("module", [SSA(8, 2), SDSA(8, 2), DSFormerAttention(8, 2)])
def test_bad_input(module):
    with pytest.raises(ValueError, match="rank 4"):
        module(torch.zeros(2, 3, 8))
    with pytest.raises(ValueError, match="D = 8"):
        module(torch.zeros(2, 1, 3, 6))
    with pytest.raises(TypeError, match="x"):
        module("tokens")
