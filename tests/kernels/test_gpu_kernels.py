"""GPU checks of the compiled kernels (``pytest -m gpu``; skipped without CUDA).

Spike attention is integer arithmetic, so the compiled kernels (tensor-core fp16/bf16 dots,
hi/lo split, autotuned configs) must equal the pure-PyTorch references bit for bit on the
token layout. The references run in float64 (SSA, DSFormer) or float32 (SDSA) and are rounded
once to the input dtype: cuBLAS half-precision GEMMs may reduce in half precision, which would
make a half-precision reference itself inexact. The LIF backward at T = 32/64 (chunked,
checkpointed) and the other neurons are compared with the references as the LIF GPU test does
(flip rate, tolerance); fixed-point CUBA exactly.
"""

from __future__ import annotations

import pytest
import torch
from stc.kernels.alif import alif_multistep
from stc.kernels.attention import (
    dsformer,
    dsformer_reference,
    sdsa,
    sdsa_reference,
    ssa,
    ssa_reference,
)
from stc.kernels.cuba_fixed import cuba_lif_fixed
from stc.kernels.cuba_lif import cuba_lif_multistep
from stc.kernels.lif import lif_multistep, lif_reference

from stc.nn.attention import split_heads

pytestmark = pytest.mark.gpu


def heads(T, B, N, H, d, dtype, seed, high=1):
    g = torch.Generator().manual_seed(seed)
    if high == 1:
        x = (torch.rand((T, B, N, H * d), generator=g) < 0.3).float()
    else:
        x = torch.randint(0, high + 1, (T, B, N, H * d), generator=g).float()
    return split_heads(x.to("cuda", dtype), H)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(4, 2, 196, 12, 32), (2, 1, 300, 2, 64), (2, 1, 50, 1, 128)])
def test_ssa_sdsa_exact_on_gpu(dtype, shape):
    q, k, v = (heads(*shape, dtype, i) for i in range(3))
    want = ssa_reference(q.double(), k.double(), v.double()).to(dtype)
    assert torch.equal(ssa(q, k, v, max_value=1), want)
    assert torch.equal(ssa(q, k, v), want)   # range unknown: IEEE plan for the KV operand
    assert torch.equal(sdsa(q, k, v), sdsa_reference(q.float(), k.float(), v.float()).to(dtype))


def test_ssa_split_plan_exact_on_gpu():
    T, B, N, H, d = 2, 1, 600, 2, 32
    q, v = heads(T, B, N, H, d, torch.float32, 0, high=4), heads(T, B, N, H, d, torch.float32,
                                                                  1, high=4)
    k = torch.full_like(q, 4.0)
    out = ssa(q, k, v, max_value=4)
    assert torch.equal(out.double(), (q.double() @ (k.double().transpose(-2, -1)
                                                    @ v.double())) * 0.125)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("high, ratio", [(1, 0.25), (4, 0.3), (1, 1.0)])
def test_dsformer_exact_on_gpu(dtype, high, ratio):
    q, k, v = (heads(4, 2, 49, 4, 32, dtype, i, high) for i in range(3))
    ref = dsformer_reference(q.double(), k.double(), v.double(), 2, ratio).to(dtype)
    assert torch.equal(dsformer(q, k, v, 2, ratio, max_value=high), ref)
    assert torch.equal(dsformer(q, k, v, 2, ratio), ref)   # range unknown: bisection


@pytest.mark.parametrize("T", [32, 64])
def test_lif_long_t_backward_on_gpu(T):
    g = torch.Generator().manual_seed(T)
    x = (torch.randn((T, 3, 4099), generator=g) + 0.8).cuda().requires_grad_()
    xr = x.detach().clone().requires_grad_()
    s, _ = lif_multistep(x)
    sr, _ = lif_reference(xr)
    assert float((s != sr).float().mean()) < 1e-4
    gs = torch.randn(s.shape, generator=g).cuda()
    (gx,) = torch.autograd.grad(s, x, gs)
    (gxr,) = torch.autograd.grad(sr, xr, gs)
    ok = (gx - gxr).abs() <= 1e-3 + 1e-3 * gxr.abs()
    assert float(ok.float().mean()) > 0.99


def test_neurons_on_gpu_match_references():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn((8, 4, 1000), generator=g) + 0.8).cuda()
    for op in (alif_multistep, cuba_lif_multistep):
        s, *_ = op(x * 3)
        sr, *_ = op((x * 3).cpu(), backend="torch")
        assert float((s.cpu() != sr).float().mean()) < 1e-4
    a = torch.randint(-100, 300, (8, 4, 1000), generator=g, dtype=torch.int32)
    got = cuba_lif_fixed(a.cuda(), du=410, dv=820, vth_mant=50, bias_mant=3, bias_exp=6)
    want = cuba_lif_fixed(a, du=410, dv=820, vth_mant=50, bias_mant=3, bias_exp=6,
                          backend="torch")
    for gt, w in zip(got, want):
        assert torch.equal(gt.cpu(), w)
