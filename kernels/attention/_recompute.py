"""Backward by recomputation, shared by the attention ops' autograd Functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def recompute_qkv_grads(reference: Callable[..., torch.Tensor], saved: Sequence[torch.Tensor],
                        grad_out: torch.Tensor, *args) -> tuple[torch.Tensor, ...]:
    """Gradients of ``reference(q, k, v, *args)`` with respect to q, k and v ``[T, B, H, N, d]``,
    recomputed with autograd from the saved inputs (the forward kernel keeps no graph)."""
    with torch.enable_grad():
        q, k, v = (x.detach().requires_grad_(True) for x in saved)
        return torch.autograd.grad(reference(q, k, v, *args), (q, k, v), grad_out)
