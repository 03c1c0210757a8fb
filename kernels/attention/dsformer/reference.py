"""DSFormer attention (stc's definition) in pure PyTorch: the reference for the kernel.

Definition (shared/reference/attention.md, "DSFormer attention: stc's definition"):

1. Q, K, V: per-head spikes ``[T, B, H, N, d]`` (binary, or small non-negative integers).
2. Timesteps are split into consecutive windows of ``window_size`` steps; the last window is
   shorter when T is not a multiple. In a window of w steps every (t, n) pair is a token, so a
   window holds L = w * N tokens, ordered t-major (index (t - t0) * N + n).
3. Scores S = Q_w K_w^T ([L, L] per batch, head and window): exact integer coincidence counts.
4. Sparsity: k = max(1, ceil(sparse_ratio * L)); in each query row keep every key whose score
   is >= the k-th largest score of that row (ties kept), zero the rest.
5. O_w = S_sparse V_w * scale (returned pre-LIF; the module applies SN with v_th = 0.5).

With window_size = 1 and sparse_ratio = 1 this is Spikformer's SSA exactly.
Gradients (autograd through this function): the keep-mask is computed from detached scores and
treated as constant; gradient flows to q, k, v through the kept scores and through V.
"""

from __future__ import annotations

import math

import torch


def topk_count(sparse_ratio: float, length: int) -> int:
    """k = max(1, ceil(sparse_ratio * length)) keys kept per query row.

    A 1e-9 slack absorbs binary floating-point error (0.3 * 10 = 3.0000000000000004 -> 3).
    """
    return max(1, math.ceil(sparse_ratio * length - 1e-9))


def window_bounds(T: int, window_size: int) -> list[tuple[int, int]]:
    """Consecutive [t0, t1) windows of ``window_size`` steps covering 0..T-1 (last may be short)."""
    return [(t0, min(t0 + window_size, T)) for t0 in range(0, T, window_size)]


def window_tokens(x: torch.Tensor, t0: int, t1: int) -> torch.Tensor:
    """Tokens of window [t0, t1): ``[T, B, H, N, d]`` -> ``[B, H, (t1 - t0) * N, d]``, t-major."""
    T, B, H, N, d = x.shape
    return x[t0:t1].permute(1, 2, 0, 3, 4).reshape(B, H, (t1 - t0) * N, d)


def window_untokens(o: torch.Tensor, w: int) -> torch.Tensor:
    """Inverse of ``window_tokens``: ``[B, H, w * N, d]`` -> ``[w, B, H, N, d]``."""
    B, H, L, d = o.shape
    return o.reshape(B, H, w, L // w, d).permute(2, 0, 1, 3, 4)


def dsformer_window_reference(qw: torch.Tensor, kw: torch.Tensor, vw: torch.Tensor,
                              sparse_ratio: float, scale: float) -> torch.Tensor:
    """One window: tokens ``[..., L, d]`` -> ``S_sparse @ V * scale`` ``[..., L, d]``."""
    scores = qw @ kw.transpose(-2, -1)                      # [..., L, L]
    k = topk_count(sparse_ratio, scores.shape[-1])
    if k >= scores.shape[-1]:
        return (scores @ vw) * scale
    kth = torch.topk(scores.detach(), k, dim=-1).values[..., -1:]   # k-th largest per row
    keep = scores.detach() >= kth
    sparse = torch.where(keep, scores, torch.zeros_like(scores))
    return (sparse @ vw) * scale


def dsformer_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window_size: int = 1,
                       sparse_ratio: float = 1.0, scale: float = 0.125) -> torch.Tensor:
    """Windowed top-k sparse spike attention on ``[T, B, H, N, d]`` -> ``[T, B, H, N, d]``.

    No argument checks: see ``op.dsformer``.
    """
    outs = []
    for t0, t1 in window_bounds(q.shape[0], window_size):
        o = dsformer_window_reference(window_tokens(q, t0, t1), window_tokens(k, t0, t1),
                                      window_tokens(v, t0, t1), sparse_ratio, scale)
        outs.append(window_untokens(o, t1 - t0))
    return torch.cat(outs, dim=0)
