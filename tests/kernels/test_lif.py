"""Fused multi-step LIF: Triton kernel vs the pure-PyTorch reference, SpikingJelly, formulas.

On CPU the Triton kernels run under TRITON_INTERPRET=1 (root conftest), which computes IEEE fp32,
so forward results must be bit-identical to ``lif_reference``; gradients must equal autograd
through the reference to a tight tolerance. GPU variants compare by spike flip rate plus a
tolerance on v (shared/reference/triton.md).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from stc.kernels.lif import lif_multistep, lif_reference

from stc.nn.neurons import LIF

GRAD_TOL = dict(rtol=1e-5, atol=1e-6)


def _inputs(T, shape, dtype=torch.float32, device="cpu", seed=0, v_init=False):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn((T, *shape), generator=g) * 1.5 + 0.6).to(device=device, dtype=dtype)
    vi = (torch.randn(shape, generator=g) * 0.5).to(device=device, dtype=dtype) if v_init else None
    return x, vi


def _run(fn, x, vi, gs, gv, **kw):
    """Forward + backward of (spikes . gs + v_last . gv); returns (s, v, grad_x, grad_v_init)."""
    x = x.detach().clone().requires_grad_()
    vi = None if vi is None else vi.detach().clone().requires_grad_()
    s, v = fn(x, v_init=vi, **kw)
    loss = (s.float() * gs).sum() + (v.float() * gv).sum()
    grads = torch.autograd.grad(loss, [x] if vi is None else [x, vi])
    return s.detach(), v.detach(), grads[0], (grads[1] if vi is not None else None)


def _triton(x, **kw):
    return lif_multistep(x, backend="triton", **kw)


def _reference(x, tau=2.0, v_th=1.0, v_reset=0.0, decay_input=True, detach_reset=True,
               surrogate="sigmoid", alpha=None, v_init=None):
    return lif_reference(x, tau, v_th, v_reset, decay_input, detach_reset, surrogate, alpha,
                         v_init)


def _compare(T, shape, v_init=False, dtype=torch.float32, **kw):
    x, vi = _inputs(T, shape, dtype=dtype, v_init=v_init)
    g = torch.Generator().manual_seed(1)
    gs = torch.randn((T, *shape), generator=g)
    gv = torch.randn(shape, generator=g)
    st, vt, gxt, gvit = _run(_triton, x, vi, gs, gv, **kw)
    sr, vr, gxr, gvir = _run(_reference, x, vi, gs, gv, **kw)
    assert st.dtype == dtype and vt.dtype == torch.float32
    assert torch.equal(st, sr), "spikes differ from the reference"
    assert torch.equal(vt, vr), "v_last differs from the reference"
    assert 0.0 < float(sr.float().mean()) < 1.0, "degenerate test input: no or all spikes"
    assert gxt.dtype == dtype
    torch.testing.assert_close(gxt, gxr, **GRAD_TOL)
    if v_init:
        torch.testing.assert_close(gvit, gvir, **GRAD_TOL)


CONFIGS = list(itertools.product([True, False], [0.0, -0.2, None], [True, False]))


@pytest.mark.parametrize("decay_input,v_reset,detach_reset", CONFIGS)
@pytest.mark.parametrize("surrogate", ["sigmoid", "atan", "fast_sigmoid"])
def test_exact_vs_reference_all_modes(decay_input, v_reset, detach_reset, surrogate):
    # 2 * 3 * 37 = 222 neurons: not a multiple of any block size; tau = 1.7 is not a power of 2
    _compare(5, (2, 3, 37), tau=1.7, v_th=0.8, v_reset=v_reset, decay_input=decay_input,
             detach_reset=detach_reset, surrogate=surrogate, v_init=True)


@pytest.mark.parametrize("T,shape", [(1, (7,)), (3, (1,)), (8, (1100,)), (16, (3, 5)),
                                     (2, (2, 9001)), (32, (40,)), (37, (3, 7))])
def test_exact_shapes(T, shape):
    # 18002 neurons span three programs (interpreter blocks: 8192 forward and backward; on GPU
    # 1024), the last one partial. T = 32 and 37 run the chunked backward (checkpoints every
    # 16 steps; 37 ends with a partial chunk of 5 steps).
    _compare(T, shape)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 9), n=st.integers(1, 300), tau=st.floats(1.01, 8.0),
       v_th=st.floats(0.1, 2.0), hard=st.booleans(), decay_input=st.booleans(),
       seed=st.integers(0, 2**16))
def test_exact_random_parameters(T, n, tau, v_th, hard, decay_input, seed):
    """Property: for any parameters the kernel's forward equals the reference bit for bit."""
    x, vi = _inputs(T, (n,), seed=seed, v_init=True)
    kw = dict(tau=tau, v_th=v_th, v_reset=0.0 if hard else None, decay_input=decay_input)
    st_, vt = lif_multistep(x, v_init=vi, backend="triton", **kw)
    sr, vr = _reference(x, v_init=vi, **kw)
    assert torch.equal(st_, sr) and torch.equal(vt, vr)


def test_alpha_and_tau():
    _compare(4, (65,), tau=3.3, v_th=0.5, alpha=2.5, surrogate="atan", detach_reset=False)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs(dtype):
    # spikes and v are computed in fp32 from the rounded input: exact vs the reference
    _compare(4, (3, 41), dtype=dtype, v_init=True, detach_reset=False)


def test_uint8_spikes_no_grad():
    x, _ = _inputs(4, (50,))
    x.requires_grad_()
    s, v = lif_multistep(x, spike_dtype=torch.uint8, backend="triton")
    sr, vr = _reference(x)
    assert s.dtype == torch.uint8 and not s.requires_grad
    assert torch.equal(s, sr.to(torch.uint8)) and torch.equal(v, vr)
    assert set(s.unique().tolist()) <= {0, 1}


def test_spikes_only_or_v_only_gradients():
    x, _ = _inputs(4, (33,))
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    (gx1,) = torch.autograd.grad(lif_multistep(x1, backend="triton")[1].sum(), x1)
    (gx2,) = torch.autograd.grad(_reference(x2)[1].sum(), x2)
    torch.testing.assert_close(gx1, gx2, **GRAD_TOL)
    (gx1,) = torch.autograd.grad(lif_multistep(x1, backend="triton")[0].sum(), x1)
    (gx2,) = torch.autograd.grad(_reference(x2)[0].sum(), x2)
    torch.testing.assert_close(gx1, gx2, **GRAD_TOL)


def test_forward_matches_scalar_formula():
    """Independent check of the dynamics: a plain-Python scalar loop of the LIF equations."""
    x, _ = _inputs(6, (9,))
    tau, v_th, v_reset = 2.0, 1.0, 0.0
    s, v = lif_multistep(x, tau=tau, v_th=v_th, v_reset=v_reset, backend="triton")
    for n in range(9):
        vn = v_reset
        for t in range(6):
            h = vn + (float(x[t, n]) - (vn - v_reset)) / tau
            fired = h >= v_th
            assert float(s[t, n]) == float(fired)
            vn = v_reset if fired else h
        assert math.isclose(float(v[n]), vn, rel_tol=1e-6, abs_tol=1e-6)


def test_if_neuron_tau_inf():
    """tau = inf, decay_input=False: H = V + X exactly (integrate-and-fire)."""
    x, _ = _inputs(6, (40,))
    s, v = lif_multistep(x, tau=float("inf"), decay_input=False, v_reset=None, backend="triton")
    vv = torch.zeros(40)
    for t in range(6):
        h = vv + x[t]
        st = (h >= 1.0).float()
        assert torch.equal(s[t], st)
        vv = h - st
    assert torch.equal(v, vv)
    _compare(6, (40,), tau=float("inf"), decay_input=False, v_reset=0.0, detach_reset=False)
    lif = LIF(tau=float("inf"), decay_input=False, v_reset=None, backend="triton")
    assert torch.equal(lif(x), s)


def test_lif_module_matches_functional():
    x, _ = _inputs(4, (2, 3, 5))
    lif = LIF(tau=2.0, v_th=0.5, backend="triton", store_v=True)
    s = lif(x)
    sr, vr = _reference(x, v_th=0.5)
    assert torch.equal(s, sr) and torch.equal(lif.v_last, vr)


def test_spikingjelly_parity():
    """Peer reference: SpikingJelly 2.0 multi-step LIFNode (tau=2, detach_reset, Sigmoid)."""
    from spikingjelly.activation_based import neuron, surrogate

    x, _ = _inputs(4, (3, 64), seed=3)
    g = torch.randn(4, 3, 64, generator=torch.Generator().manual_seed(4))
    sj = neuron.LIFNode(tau=2.0, detach_reset=True, step_mode="m",
                        surrogate_function=surrogate.Sigmoid(alpha=4.0))
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1 = sj(x1)
    (gx1,) = torch.autograd.grad((s1 * g).sum(), x1)
    s2, v2 = lif_multistep(x2, tau=2.0, detach_reset=True, surrogate="sigmoid", backend="triton")
    (gx2,) = torch.autograd.grad((s2 * g).sum(), x2)
    assert torch.equal(s1, s2)
    torch.testing.assert_close(v2, sj.v, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gx2, gx1, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# bad input

@pytest.mark.parametrize("kwargs,err,match", [
    (dict(tau=0.0), ValueError, "tau"),
    (dict(tau=-1.0), ValueError, "tau"),
    (dict(tau=float("nan")), ValueError, "tau"),
    (dict(tau=float("inf")), ValueError, "tau = inf"),
    (dict(tau="2"), TypeError, "tau"),
    (dict(alpha=0.0), ValueError, "alpha"),
    (dict(surrogate="relu"), ValueError, "surrogate"),
    (dict(backend="cuda"), ValueError, "backend"),
    (dict(spike_dtype=torch.int32), TypeError, "spike_dtype"),
])
def test_bad_parameters(kwargs, err, match):
    x, _ = _inputs(2, (4,))
    with pytest.raises(err, match=match):
        lif_multistep(x, **kwargs)


@pytest.mark.parametrize("make,err,match", [
    (lambda: [[1.0]], TypeError, "x must be a torch.Tensor"),
    (lambda: torch.tensor(1.0), ValueError, "rank"),
    (lambda: torch.zeros(0, 4), ValueError, "T = 0"),
    (lambda: torch.tensor([[1.0, float("nan")]]), ValueError, "NaN"),
    (lambda: torch.tensor([[1.0, float("inf")]]), ValueError, "inf"),
    (lambda: torch.zeros(2, 4, dtype=torch.int32), TypeError, "dtype int32"),
    (lambda: torch.zeros(2, 4, dtype=torch.float64), TypeError, "dtype float64"),
    (lambda: torch.zeros(4, 2).t(), ValueError, "contiguous"),
])
def test_bad_x(make, err, match):
    with pytest.raises(err, match=match):
        lif_multistep(make(), backend="triton")


def test_bad_v_init():
    x = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="v_init must have shape"):
        lif_multistep(x, v_init=torch.zeros(5))
    with pytest.raises(TypeError, match="v_init"):
        lif_multistep(x, v_init=torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="v_init"):
        lif_multistep(x, v_init=torch.full((4,), float("nan")))
    with pytest.raises(ValueError, match="one device"):
        lif_multistep(x, v_init=torch.zeros(4, device="meta"))


def test_lif_module_bad_parameters():
    with pytest.raises(ValueError, match="tau"):
        LIF(tau=0.0)
    with pytest.raises(ValueError, match="tau = inf"):
        LIF(tau=float("inf"), decay_input=True)
    with pytest.raises(ValueError, match="surrogate"):
        LIF(surrogate="step")
    with pytest.raises(ValueError, match="backend"):
        LIF(backend="cupy")


# ---------------------------------------------------------------------------------------------
# GPU: compiled kernels (fused multiply-add, other exp); flip rate plus tolerance on v

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("decay_input,v_reset,detach_reset", CONFIGS[::2])
def test_gpu_close_to_reference(dtype, decay_input, v_reset, detach_reset):
    T, shape = 8, (64, 4099)
    x, vi = _inputs(T, shape, dtype=dtype, device="cuda", v_init=True)
    gs = torch.randn((T, *shape), device="cuda")
    gv = torch.randn(shape, device="cuda")
    kw = dict(tau=1.7, v_th=0.8, v_reset=v_reset, decay_input=decay_input,
              detach_reset=detach_reset)
    st, vt, gxt, gvit = _run(_triton, x, vi, gs, gv, **kw)
    sr, vr, gxr, gvir = _run(_reference, x, vi, gs, gv, **kw)
    flip = float((st != sr).float().mean())
    assert flip < 1e-4, f"spike flip rate {flip}"
    ok = (vt - vr).abs() <= 1e-4 + 1e-4 * vr.abs()
    assert float(ok.float().mean()) > 1 - 1e-3
    same = (st == sr).all(dim=0)  # gradients compared where no spike flipped
    tol = 1e-3 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(gxt[:, same].float(), gxr[:, same].float(), rtol=tol, atol=tol)
