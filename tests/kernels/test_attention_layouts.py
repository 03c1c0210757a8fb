"""Attention kernels on the token layout [T, B, N, H * d] (strided heads, no copies), in fp16 /
bf16, and through every exact dot plan; each against the pure-PyTorch reference (bit for bit)
and a float64 formula, under the interpreter on CPU."""

from __future__ import annotations

import pytest
import torch
from stc.kernels._validate import should_validate
from stc.kernels.attention import (
    dsformer,
    dsformer_reference,
    sdsa,
    sdsa_reference,
    ssa,
    ssa_reference,
)
from stc.kernels.attention._launch import ACC_IEEE, ACC_SINGLE, ACC_SPLIT, OP_FP16, OP_IEEE
from stc.kernels.attention.dsformer import triton_dsformer
from stc.kernels.attention.sdsa import triton_sdsa
from stc.kernels.attention.ssa import triton_ssa

from stc.nn.attention import merge_heads, split_heads

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def tokens(T, B, N, D, seed, high=1, p=0.3, dtype=torch.float32):
    """Token tensor [T, B, N, D]: binary spikes (high = 1) or integers 0..high."""
    g = torch.Generator().manual_seed(seed)
    if high == 1:
        x = (torch.rand((T, B, N, D), generator=g) < p).float()
    else:
        x = torch.randint(0, high + 1, (T, B, N, D), generator=g).float()
    return x.to(device=DEVICE, dtype=dtype)


def heads3(T, B, N, H, d, high=1, dtype=torch.float32, seed=0):
    """q, k, v as per-head views [T, B, H, N, d] of token tensors (not contiguous)."""
    out = tuple(split_heads(tokens(T, B, N, H * d, seed + i, high, dtype=dtype), H)
                for i in range(3))
    assert H == 1 or not out[0].is_contiguous()
    return out


def ssa_f64(q, k, v, scale):
    q, k, v = q.double(), k.double(), v.double()
    return torch.einsum("...nm,...md->...nd", torch.einsum("...nd,...md->...nm", q, k), v) * scale


def is_token_view(o):
    """True when the per-head output o is a view of a contiguous [T, B, N, H * d] tensor."""
    return o.permute(0, 1, 3, 2, 4).is_contiguous()


def spy(monkeypatch, kernel):
    seen = []
    monkeypatch.setattr(kernel, "pre_run_hooks", [lambda *a, **kw: seen.append(kw)])
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_ssa_strided_heads_no_copy(monkeypatch, dtype):
    q, k, v = heads3(2, 2, 21, 3, 16, dtype=dtype)
    seen = spy(monkeypatch, triton_ssa._ssa_fwd_kernel)
    out = ssa(q, k, v, max_value=1, backend="triton")
    assert len(seen) == 1 and seen[0]["OP"] == OP_FP16 and seen[0]["ACC"] == ACC_SINGLE
    assert out.dtype == dtype and is_token_view(out), "output not in the token layout"
    ref = ssa_reference(q.contiguous(), k.contiguous(), v.contiguous())
    assert torch.equal(out, ref)
    assert torch.equal(out.double(), ssa_f64(q, k, v, 0.125))
    merged = merge_heads(out)
    assert merged.data_ptr() == out.data_ptr(), "merge_heads copied the kernel's output"


def test_ssa_split_and_ieee_plans_are_exact(monkeypatch):
    # all-4 k and v over N = 150 tokens: KV = 2400 > 2048, so the fp16 plan must split it
    T, B, N, H, d = 2, 1, 150, 1, 16
    q = tokens(T, B, N, H * d, 1, high=4).reshape(T, B, H, N, d)
    k = torch.full_like(q, 4.0)
    v = tokens(T, B, N, H * d, 2, high=4).reshape(T, B, H, N, d)
    v[:, :, :, :, 0] = 4.0
    seen = spy(monkeypatch, triton_ssa._ssa_fwd_kernel)
    out = ssa(q, k, v, max_value=4, backend="triton")
    assert seen[-1]["OP"] == OP_FP16 and seen[-1]["ACC"] == ACC_SPLIT
    assert float((k.transpose(-2, -1) @ v).max()) > 2048, "test data does not reach hi"
    assert torch.equal(out, ssa_reference(q, k, v))
    assert torch.equal(out.double(), ssa_f64(q, k, v, 0.125))
    # a declared range above fp16's exact integers: IEEE fp32 operands
    out = ssa(q, k, v, max_value=3000, backend="triton")
    assert seen[-1]["OP"] == OP_IEEE
    assert torch.equal(out, ssa_reference(q, k, v))
    # fp16 operands with a declared KV bound beyond 2048**2: IEEE for the second dot only
    qh, kh, vh = (x.half() for x in heads3(1, 1, 40, 2, 16))
    out = ssa(qh, kh, vh, max_value=400, backend="triton")
    assert seen[-1]["OP"] == OP_FP16 and seen[-1]["ACC"] == ACC_IEEE
    assert torch.equal(out.double(), ssa_f64(qh, kh, vh, 0.125))


def test_ssa_bf16():
    q, k, v = heads3(2, 1, 13, 2, 16, dtype=torch.bfloat16)
    out = ssa(q, k, v, max_value=1, backend="triton")
    assert out.dtype == torch.bfloat16 and is_token_view(out)
    assert torch.equal(out, ssa_reference(q, k, v))
    assert torch.equal(out.double(), ssa_f64(q, k, v, 0.125))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_sdsa_strided_many_token_tiles(dtype):
    # N = 150 tokens: three token tiles of the two-phase reduction under the interpreter
    q, k, v = heads3(4, 2, 150, 2, 12, dtype=dtype, seed=3)
    assert triton_sdsa.sdsa_config(12)["BLOCK_N"] < 150 / 2
    out = sdsa(q, k, v, v_th=8.0, backend="triton")
    assert out.dtype == dtype and is_token_view(out)
    ref = sdsa_reference(q.float(), k.float(), v.float(), 8.0)
    assert torch.equal(out.float(), ref)
    assert torch.equal(out, sdsa_reference(q, k, v, 8.0))
    assert 0 < float(ref.sum()) and bool((ref == 0).any()), "degenerate data"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("graded", [False, True])
def test_dsformer_strided(monkeypatch, dtype, graded):
    high = 3 if graded else 1
    q, k, v = heads3(3, 2, 9, 2, 16, high=high, dtype=dtype, seed=5)
    seen = spy(monkeypatch, triton_dsformer._dsformer_fwd_kernel)
    out = dsformer(q, k, v, window_size=2, sparse_ratio=0.3, max_value=high, backend="triton")
    # declared binary: d + 1 = 17 bins; graded 0..3: d * 9 + 1 = 145 bins
    assert seen[-1]["MODE"] == 1 and seen[-1]["NBINS"] == (32 if not graded else 256)
    assert out.dtype == dtype and is_token_view(out)
    ref = dsformer_reference(q.contiguous(), k.contiguous(), v.contiguous(), 2, 0.3)
    assert torch.equal(out, ref)


def test_dsformer_unknown_range_bisects_exactly(monkeypatch):
    # validate=False with no max_value: nothing is read, the whole exact range is searched
    # (fp16: exact operands whatever the values; the S V dot goes IEEE; fp32 inputs would take
    # IEEE operands throughout)
    q, k, v = heads3(2, 1, 7, 1, 16, high=2, seed=8, dtype=torch.float16)
    seen = spy(monkeypatch, triton_dsformer._dsformer_fwd_kernel)
    out = dsformer(q, k, v, sparse_ratio=0.4, validate=False, backend="triton")
    assert seen[-1]["MODE"] == 2 and seen[-1]["NITER"] == 24
    assert seen[-1]["OP"] == OP_FP16 and seen[-1]["ACC"] == ACC_IEEE
    assert torch.equal(out, dsformer_reference(q, k, v, 1, 0.4))
    out = dsformer(q.float(), k.float(), v.float(), sparse_ratio=0.4, validate=False,
                   backend="triton")
    assert seen[-1]["OP"] == OP_IEEE
    assert torch.equal(out, dsformer_reference(q.float(), k.float(), v.float(), 1, 0.4))


def test_validate_switch():
    cpu = torch.zeros(2)
    meta = torch.empty(2, device="meta")
    assert should_validate(None, cpu) and not should_validate(None, cpu, meta)
    assert should_validate(True, meta) and not should_validate(False, cpu)
    with pytest.raises(TypeError, match="validate"):
        should_validate("yes", cpu)
    q, k, v = heads3(2, 1, 5, 1, 16)
    with pytest.raises(ValueError, match="above the declared max_value"):
        ssa(q * 3, k, v, max_value=1, backend="triton")
    with pytest.raises(ValueError, match="non-negative integers"):
        dsformer(q - 1, k, v, sparse_ratio=0.5, backend="triton")
    with pytest.raises(ValueError, match="max_value"):
        ssa(q, k, v, max_value=-1.0)
