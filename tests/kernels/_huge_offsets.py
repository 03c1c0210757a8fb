"""Run every Triton kernel at element offsets just above 2**31, interpreted, without the memory.

Executed as a script in its own process by test_int64_offsets.py (a wrong offset here is a
wild read that may crash the process; the test then fails instead of pytest dying).

How: tensors of T = 3 timesteps x N = 2**30 + 64 neurons (3.2 G elements, so t * N
exceeds 2**31 - 1 at t = 2 while N itself is an int32 argument) live in anonymous
``MAP_NORESERVE`` mappings: only the pages a kernel touches are ever backed by memory. One
program is launched with its pointers moved to the last BLOCK neurons, so it reads and writes
x[t, N - BLOCK + i] for every t, exactly the addresses whose int32 computation would wrap.
Attention ops get q, k, v views with a time stride just above 2**30 elements (as_strided into
such a mapping) through their public functions. The interpreter's copy of tensor arguments
(a no-op copy for CPU tensors that would touch every page) is bypassed.

Under the interpreter a scalar that fits int32 is an int32 NumPy value and products wrap as
on a GPU, so this exercises the kernels' own index arithmetic. Prints "ok <name>" per kernel;
exits 1 on the first mismatch.
"""

from __future__ import annotations

import mmap
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402
from triton.runtime import interpreter  # noqa: E402

T = 3
N = (1 << 30) + 64
BLOCK = 64
_MAPS = []
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)  # Linux value; Python >= 3.12 names it


def huge(numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A 1-D tensor of ``numel`` elements backed by lazily allocated (untouched) memory."""
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE)
    _MAPS.append(buf)
    return torch.frombuffer(buf, dtype=dtype)


def _no_copy_init(self, args, kwargs):
    return list(args), dict(kwargs)


interpreter.GridExecutor._init_args_hst = _no_copy_init
interpreter.GridExecutor._restore_args_dev = lambda self, *a, **k: None


def tail_views(flat: torch.Tensor, small: torch.Tensor | None = None) -> torch.Tensor:
    """View of ``flat`` [T * N] starting at neuron N - BLOCK (what program 0 sees as offs 0);
    when ``small`` [T, BLOCK] is given, write it to the T tail blocks first."""
    if small is not None:
        for t in range(T):
            flat[t * N + N - BLOCK: t * N + N] = small[t]
    return flat[N - BLOCK:]


def read_tails(flat: torch.Tensor) -> torch.Tensor:
    return torch.stack([flat[t * N + N - BLOCK: t * N + N] for t in range(T)])


def check(name: str, got: torch.Tensor, want: torch.Tensor) -> None:
    if not torch.equal(got, want):
        print(f"MISMATCH {name}: {got.flatten()[:8]} vs {want.flatten()[:8]}")
        sys.exit(1)
    print("ok", name)


def inputs(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((T, BLOCK), generator=g) * 2.5


def lif() -> None:
    from stc.kernels.lif import lif_reference
    from stc.kernels.lif.triton_lif import _lif_bwd_kernel, _lif_fwd_kernel, bwd_config

    xs = inputs(0)
    x, s = huge(T * N, torch.float32), huge(T * N, torch.float32)
    v_last = torch.empty(BLOCK)
    _lif_fwd_kernel[(1,)](tail_views(x, xs), v_last, tail_views(s), v_last, N, 2.0, 1.0, 0.0,
                          T=T, BLOCK=BLOCK, DECAY_INPUT=True, IS_IF=False, HARD=True,
                          HAS_V_INIT=False)
    sr, vr = lif_reference(xs)
    check("lif_fwd", read_tails(s), sr)
    # backward: dL/dS = 1 everywhere, compared with the kernel on the small tensor
    gs, gx = huge(T * N, torch.float32), huge(T * N, torch.float32)
    small_gx = torch.empty(T, BLOCK)
    cfg = {**bwd_config(T), "BLOCK": BLOCK}
    kw = dict(T=T, DECAY_INPUT=True, IS_IF=False, HARD=True, DETACH=True, SURR=0,
              HAS_V_INIT=False, HAS_GS=True, HAS_GV=False, WANT_GVI=False, **cfg)
    _lif_bwd_kernel[(1,)](tail_views(x), v_last, tail_views(gs, torch.ones(T, BLOCK)), v_last,
                          tail_views(gx), v_last, N, 2.0, 1.0, 0.0, 4.0, **kw)
    _lif_bwd_kernel[(1,)](xs, v_last, torch.ones(T, BLOCK), v_last, small_gx, v_last,
                          BLOCK, 2.0, 1.0, 0.0, 4.0, **kw)
    check("lif_bwd", read_tails(gx), small_gx)


def alif() -> None:
    from stc.kernels.alif.reference import adaptation_decay, alif_reference
    from stc.kernels.alif.triton_alif import _alif_bwd_kernel, _alif_fwd_kernel, bwd_block

    xs = inputs(1)
    rho, omr = adaptation_decay(20.0)
    x, s = huge(T * N, torch.float32), huge(T * N, torch.float32)
    zero = torch.zeros(BLOCK)
    v, a = torch.empty(BLOCK), torch.empty(BLOCK)
    _alif_fwd_kernel[(1,)](tail_views(x, xs), zero, zero, tail_views(s), v, a, T, N, 2.0, 1.0,
                           0.0, 1.8, rho, omr, DECAY_INPUT=True, HARD=True, BLOCK=BLOCK)
    sr, _, _ = alif_reference(xs, 2.0, 20.0, 1.8, 1.0, 0.0, True, True, "sigmoid", 4.0,
                              None, None)
    check("alif_fwd", read_tails(s), sr)
    gs, gx = huge(T * N, torch.float32), huge(T * N, torch.float32)
    small_gx, o1, o2 = torch.empty(T, BLOCK), torch.empty(BLOCK), torch.empty(BLOCK)
    t_pad, _ = bwd_block(T, BLOCK)
    kw = dict(T=T, T_PAD=t_pad, BLOCK=BLOCK, DECAY_INPUT=True, HARD=True, DETACH=True, SURR=0)
    args = (2.0, 1.0, 0.0, 1.8, rho, omr, 4.0)
    _alif_bwd_kernel[(1,)](tail_views(x), zero, zero, tail_views(gs, torch.ones(T, BLOCK)),
                           zero, zero, tail_views(gx), o1, o2, N, *args, **kw)
    _alif_bwd_kernel[(1,)](xs, zero, zero, torch.ones(T, BLOCK), zero, zero, small_gx, o1, o2,
                           BLOCK, *args, **kw)
    check("alif_bwd", read_tails(gx), small_gx)


def cuba_lif() -> None:
    from stc.kernels.cuba_lif.reference import cuba_lif_reference
    from stc.kernels.cuba_lif.triton_cuba_lif import _cuba_lif_bwd_kernel, _cuba_lif_fwd_kernel

    xs = inputs(2) * 4
    x, s = huge(T * N, torch.float32), huge(T * N, torch.float32)
    zero = torch.zeros(BLOCK)
    i, v = torch.empty(BLOCK), torch.empty(BLOCK)
    _cuba_lif_fwd_kernel[(1,)](tail_views(x, xs), zero, zero, tail_views(s), i, v, T, N, 5.0,
                               10.0, 0.2, 0.0, 0.0, HARD=True, BLOCK=BLOCK)
    sr, _, _ = cuba_lif_reference(xs, 5.0, 10.0, 0.2, 0.0, 0.0, True, "sigmoid", 4.0, None,
                                  None)
    check("cuba_lif_fwd", read_tails(s), sr)
    gs, gx = huge(T * N, torch.float32), huge(T * N, torch.float32)
    small_gx, o1, o2 = torch.empty(T, BLOCK), torch.empty(BLOCK), torch.empty(BLOCK)
    kw = dict(T=T, T_PAD=4, BLOCK=BLOCK, HARD=True, DETACH=True, SURR=0)
    args = (5.0, 10.0, 0.2, 0.0, 0.0, 4.0)
    _cuba_lif_bwd_kernel[(1,)](tail_views(x), zero, zero, tail_views(gs, torch.ones(T, BLOCK)),
                               zero, zero, tail_views(gx), o1, o2, N, *args, **kw)
    _cuba_lif_bwd_kernel[(1,)](xs, zero, zero, torch.ones(T, BLOCK), zero, zero, small_gx, o1,
                               o2, BLOCK, *args, **kw)
    check("cuba_lif_bwd", read_tails(gx), small_gx)


def cuba_fixed() -> None:
    from stc.kernels.cuba_fixed.reference import (
        ACT_SHIFT,
        DECAY_SHIFT,
        DECAY_UNITY,
        MAX_UV,
        VTH_SHIFT,
        cuba_fixed_reference,
    )
    from stc.kernels.cuba_fixed.triton_cuba import _cuba_fixed_fwd

    g = torch.Generator().manual_seed(3)
    as_ = torch.randint(-200, 400, (T, BLOCK), generator=g, dtype=torch.int32)
    a, s = huge(T * N, torch.int32), huge(T * N, torch.uint8)
    zero = torch.zeros(BLOCK, dtype=torch.int32)
    bias = torch.zeros(BLOCK, dtype=torch.int64)
    u, v = torch.empty(BLOCK, dtype=torch.int32), torch.empty(BLOCK, dtype=torch.int32)
    du, dv, vth = 410, 820, 100
    _cuba_fixed_fwd[(1,)](tail_views(a, as_), bias, zero, zero, tail_views(s), u, v, T, N,
                          DECAY_UNITY - (du + 1), DECAY_UNITY - dv, vth << VTH_SHIFT,
                          DSHIFT=DECAY_SHIFT, ASHIFT=ACT_SHIFT, MAXUV=MAX_UV, BLOCK=BLOCK)
    sr, _, _ = cuba_fixed_reference(as_, du, dv, vth)
    check("cuba_fixed_fwd", read_tails(s), sr)


def attention() -> None:
    from stc.kernels.attention import (
        dsformer,
        dsformer_reference,
        sdsa,
        sdsa_reference,
        ssa,
        ssa_reference,
    )

    B, H, Nt, d = 1, 2, 10, 16
    stride_t = (1 << 30) + 256          # t * stride_t > 2**31 - 1 at t = 2
    g = torch.Generator().manual_seed(4)
    views, smalls = [], []
    for _ in range(3):
        small = (torch.rand((T, B, H, Nt, d), generator=g) < 0.4).half()
        flat = huge(T * stride_t, torch.float16)
        view = flat.as_strided((T, B, H, Nt, d), (stride_t, H * Nt * d, Nt * d, d, 1))
        for t in range(T):
            view[t] = small[t]
        views.append(view)
        smalls.append(small)
    q, k, v = views
    check("ssa_fwd", ssa(q, k, v, max_value=1, validate=False, backend="triton"),
          ssa_reference(*smalls))
    check("sdsa_kv+sdsa_out", sdsa(q, k, v, v_th=1.0, backend="triton"),
          sdsa_reference(*smalls, 1.0))
    check("dsformer_fwd", dsformer(q, k, v, window_size=2, sparse_ratio=0.3, max_value=1,
                                   validate=False, backend="triton"),
          dsformer_reference(*smalls, 2, 0.3))


if __name__ == "__main__":
    for step in (lif, alif, cuba_lif, cuba_fixed, attention):
        step()
