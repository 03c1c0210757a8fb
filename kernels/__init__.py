"""stc.kernels: Triton kernels, each beside its pure-PyTorch reference and its dispatch.

Layout (one folder per op, as in Liger-Kernel):
    <op>/reference.py   pure-PyTorch reference, same operation order as the kernel
    <op>/triton_*.py    the @triton.jit kernels and their launchers
    <op>/op.py          torch.autograd.Function and the public function with
                        ``backend="auto" | "triton" | "torch"``

Without CUDA, the Triton kernels run under TRITON_INTERPRET=1 (set it before importing this
package; tests do it in the root conftest.py).
"""

from ._backend import BACKENDS, resolve_backend, triton_available, triton_interpreted

__all__ = ["BACKENDS", "resolve_backend", "triton_available", "triton_interpreted"]
