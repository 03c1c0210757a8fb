"""Guard: under pytest, backend="auto" must really run the Triton LIF kernels.

Without CUDA the root conftest sets TRITON_INTERPRET=1, so "auto" resolves to the interpreted
Triton kernels. If that ever silently fell back to the torch reference, every "kernel equals
reference" test would compare the reference with itself; this test makes that fail loudly.
"""

from __future__ import annotations

import torch
from stc.kernels._backend import resolve_backend, triton_interpreted
from stc.kernels.lif import lif_multistep, lif_reference, triton_lif


def test_interpreter_active_without_cuda():
    if not torch.cuda.is_available():
        assert triton_interpreted(), "TRITON_INTERPRET is not set: root conftest did not run"
        assert type(triton_lif._lif_fwd_kernel).__name__ == "InterpretedFunction"
        assert type(triton_lif._lif_bwd_kernel).__name__ == "InterpretedFunction"
    assert resolve_backend("auto", torch.device("cpu")) == (
        "triton" if triton_interpreted() else "torch")


def test_auto_backend_launches_both_kernels(monkeypatch):
    launched: list[str] = []
    for kernel in (triton_lif._lif_fwd_kernel, triton_lif._lif_bwd_kernel):
        hook = (lambda name: (lambda *a, **k: launched.append(name)))(kernel.__name__)
        monkeypatch.setattr(kernel, "pre_run_hooks", [hook])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = (torch.randn(4, 3, 10, device=device) + 0.8).requires_grad_()
    s, v = lif_multistep(x, backend="auto")
    assert launched == ["_lif_fwd_kernel"], "backend='auto' did not launch the forward kernel"
    s.sum().backward()
    assert launched == ["_lif_fwd_kernel", "_lif_bwd_kernel"]
    # the spied kernels computed the right thing, not just something
    sr, vr = lif_reference(x.detach().cpu())
    assert torch.equal(s.detach().cpu(), sr)
