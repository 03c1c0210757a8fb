"""DSFormer op: fused Triton forward vs a brute-force reference (full score matrix, sort-based
top-k threshold with ties), vs SSA, and gradients with the sparsity mask held constant."""

from __future__ import annotations

import math

import pytest
import torch
from stc.kernels.attention import dsformer, dsformer_reference, ssa
from stc.kernels.attention.dsformer import triton_dsformer

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def spikes(shape, graded=False, seed=0, high=4):
    g = torch.Generator().manual_seed(seed)
    if graded:
        x = torch.randint(0, high + 1, shape, generator=g).float()
    else:
        x = (torch.rand(shape, generator=g) < 0.4).float()
    return x.to(DEVICE)


def brute_force(q, k, v, window_size, sparse_ratio, scale, keep_out=None):
    """Definition, written out: for each window and token row build all scores, sort them,
    take the k-th largest as threshold, keep ties; float64 throughout."""
    T, B, H, N, d = q.shape
    out = torch.zeros(q.shape, dtype=torch.float64, device=q.device)
    for t0 in range(0, T, window_size):
        t1 = min(t0 + window_size, T)
        L = (t1 - t0) * N
        kk = max(1, math.ceil(sparse_ratio * L - 1e-9))
        qw = torch.cat([q[t].double() for t in range(t0, t1)], dim=-2)   # [B, H, L, d]
        kw = torch.cat([k[t].double() for t in range(t0, t1)], dim=-2)
        vw = torch.cat([v[t].double() for t in range(t0, t1)], dim=-2)
        scores = torch.einsum("bhid,bhjd->bhij", qw, kw)
        kth = torch.sort(scores.detach(), dim=-1, descending=True).values[..., kk - 1:kk]
        mask = (scores.detach() >= kth).double()
        if keep_out is not None:
            keep_out.append(mask)
        ow = torch.einsum("bhij,bhjd->bhid", scores * mask, vw) * scale
        for t in range(t0, t1):
            out[t] = ow[:, :, (t - t0) * N:(t - t0 + 1) * N]
    return out


CASES = [
    # shape [T, B, H, N, d], window_size, sparse_ratio, graded
    ((5, 1, 2, 7, 12), 2, 0.3, False),     # T not divisible by window, d not a power of 2
    ((4, 2, 1, 9, 16), 1, 0.5, False),
    ((3, 1, 2, 6, 10), 3, 0.1, False),     # one window holding every timestep
    ((5, 1, 1, 5, 6), 2, 0.25, True),      # graded, histogram threshold (S_max 96)
    ((3, 1, 2, 7, 20), 2, 0.3, True),      # graded, bisection threshold (S_max 320 > 256)
]


@pytest.mark.parametrize("shape, window_size, ratio, graded", CASES)
def test_kernel_equals_brute_force_and_reference(shape, window_size, ratio, graded):
    q, k, v = (spikes(shape, graded, seed=i) for i in range(3))
    out = dsformer(q, k, v, window_size=window_size, sparse_ratio=ratio, backend="triton")
    assert torch.equal(out, dsformer_reference(q, k, v, window_size, ratio, 0.125))
    want = brute_force(q, k, v, window_size, ratio, 0.125)
    assert torch.equal(out.double(), want)
    assert not torch.equal(want, brute_force(q, k, v, window_size, 1.0, 0.125)), \
        "test data too easy: sparsity removed nothing"


def test_bisection_and_histogram_modes_are_exercised(monkeypatch):
    modes = []
    kernel = triton_dsformer._dsformer_fwd_kernel
    monkeypatch.setattr(kernel, "pre_run_hooks", [lambda *a, **kw: modes.append(kw["MODE"])])
    for shape, w, r, graded in CASES[3:]:
        q, k, v = (spikes(shape, graded, seed=i) for i in range(3))
        dsformer(q, k, v, window_size=w, sparse_ratio=r)
    # 1 = per-row score histogram, 2 = integer bisection (S_max + 1 > MAX_BINS)
    assert modes == [1, 2], "backend='auto' did not launch both threshold searches"


def test_ties_are_kept():
    # every query scores d with every key (all-ones q, k): the k-th largest ties with all
    T, B, H, N, d = 4, 1, 1, 6, 5
    q = torch.ones(T, B, H, N, d, device=DEVICE)
    v = spikes((T, B, H, N, d), seed=7)
    out = dsformer(q, q.clone(), v, window_size=2, sparse_ratio=0.1, scale=0.5)
    # all 2N keys of each window kept: O = d * sum_over_window(v) * scale for every token
    per_window = torch.stack([v[0:2].sum(dim=(0, 3)), v[2:4].sum(dim=(0, 3))])  # [2, B, H, d]
    want = (d * 0.5 * per_window).repeat_interleave(2, dim=0).unsqueeze(3).expand_as(out)
    assert torch.equal(out, want)


def test_partial_ties_kept_in_one_row():
    # one query row, scores [3, 2, 2, 2, 1, 0] with k = 2: the threshold 2 keeps four keys
    q = torch.tensor([1.0, 1, 1]).reshape(1, 1, 1, 1, 3).expand(1, 1, 1, 6, 3).contiguous()
    k = torch.tensor([[1.0, 1, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0]])
    k = k.reshape(1, 1, 1, 6, 3)
    v = torch.eye(6)[:, :3].reshape(1, 1, 1, 6, 3)
    out = dsformer(q.to(DEVICE), k.to(DEVICE), v.to(DEVICE), sparse_ratio=2 / 6, scale=1.0)
    # O = sum over kept keys of score * v_key = 3 * e0 + 2 * e1 + 2 * e2 (+ 2 * v_3 = 0)
    assert torch.equal(out[0, 0, 0, 0].cpu(), torch.tensor([3.0, 2.0, 2.0]))


@pytest.mark.parametrize("graded", [False, True])
def test_window1_ratio1_equals_ssa(graded):
    q, k, v = (spikes((3, 2, 2, 11, 12), graded, seed=i) for i in range(3))
    assert torch.equal(dsformer(q, k, v), ssa(q, k, v))
    assert torch.equal(dsformer(q, k, v, backend="torch"), ssa(q, k, v, backend="torch"))


def test_gradients_match_brute_force_with_constant_mask():
    shape = (3, 1, 2, 5, 6)
    q, k, v = (spikes(shape, seed=i).requires_grad_() for i in range(3))
    out = dsformer(q, k, v, window_size=2, sparse_ratio=0.4)
    assert "DSFormerFunction" in type(out.grad_fn).__name__
    g = torch.randn(shape, generator=torch.Generator().manual_seed(9)).to(DEVICE)
    grads = torch.autograd.grad(out, (q, k, v), g)
    qd, kd, vd = (x.detach().double().requires_grad_() for x in (q, k, v))
    ref = torch.autograd.grad(brute_force(qd, kd, vd, 2, 0.4, 0.125), (qd, kd, vd), g.double())
    for got, want in zip(grads, ref):
        assert want.abs().sum() > 0
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(window_size=0), "window_size"),
    (dict(window_size=1.5), "window_size"),
    (dict(sparse_ratio=0.0), "sparse_ratio"),
    (dict(sparse_ratio=1.5), "sparse_ratio"),
    (dict(scale=float("inf")), "scale"),
])
def test_bad_arguments(kwargs, match):
    q = spikes((2, 1, 1, 4, 4))
    with pytest.raises((ValueError, TypeError), match=match):
        dsformer(q, q, q, backend="torch", **kwargs)


def test_triton_rejects_non_integer_spikes():
    q = spikes((2, 1, 1, 4, 4))
    with pytest.raises(ValueError, match="non-negative integers"):
        dsformer(q * 0.5 + 0.25, q, q, sparse_ratio=0.5, backend="triton")
    with pytest.raises(ValueError, match="rank 5"):
        dsformer(q[0], q[0], q[0])
