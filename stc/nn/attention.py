"""Spike self-attention modules on token tensors ``[T, B, N, D]``.

- ``SSA``: Spikformer's spiking self-attention (Zhou et al., ICLR 2023; code ZK-Zhou/spikformer
  cifar10/model.py and imagenet/model.py, class ``SSA``).
- ``SDSA``: the Spike-driven Transformer v1 attention (Yao et al., NeurIPS 2023; code
  BICLab/Spike-Driven-Transformer module/ms_conv.py, class ``MS_SSA_Conv``).
- ``DSFormerAttention``: stc's windowed top-k sparse spike attention with binary or graded
  spikes (definition in shared/reference/attention.md).
- ``GradedLIF``: the multi-spike (integer) neuron behind ``spike_mode="graded"``.

The official code's 1x1 convolutions over channels are ``nn.Linear`` over D here (same weights,
reshaped [D, D, 1] -> [D, D]); BatchNorm1d normalises D over all T * B * N tokens, as the
official BN over the flattened [T*B, D, N] tensor does.
"""

from __future__ import annotations

import torch
from torch import nn

from stc.errors import check_choice, check_positive, check_tensor
from stc.kernels.attention import dsformer, sdsa, ssa
from stc.kernels.attention._checks import check_number, check_sparse_ratio, check_window_size

from .neurons import LIF

__all__ = ["SSA", "SDSA", "DSFormerAttention", "GradedLIF", "split_heads", "merge_heads"]

SPIKE_MODES = ("binary", "graded")


def _check_heads(dim_name: str, dim: object, num_heads: object) -> tuple[int, int]:
    for name, value in ((dim_name, dim), ("num_heads", num_heads)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if dim % num_heads != 0:
        raise ValueError(f"{dim_name} = {dim} must be divisible by num_heads = {num_heads}")
    return dim, num_heads


def _check_tokens(x: object, dim: int) -> torch.Tensor:
    check_tensor("x", x, ndim=4, dtypes=(torch.float32, torch.float16, torch.bfloat16))
    if x.shape[-1] != dim:
        raise ValueError(f"x must be [T, B, N, D] with D = {dim}, got shape {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError(f"x has T = {x.shape[0]} timesteps; expected T >= 1")
    return x


def _linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Linear over D then BatchNorm1d over D on all tokens: [T, B, N, D] -> [T, B, N, D']."""
    y = linear(x)
    return bn(y.reshape(-1, y.shape[-1])).reshape(y.shape)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[T, B, N, D] -> [T, B, H, N, d] (channel c = h * d + j, as the official reshape).

    A view, no copy, for a contiguous x (strides (B N D, N D, d, D, 1)): the attention
    kernels take per-head strides, so heads are never materialised."""
    T, B, N, D = x.shape
    return x.reshape(T, B, N, num_heads, D // num_heads).permute(0, 1, 3, 2, 4)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[T, B, H, N, d] -> [T, B, N, H * d], contiguous (inverse of ``split_heads``).

    No copy when x is a head view of a token tensor (what ``split_heads`` and the Triton
    attention ops return); a copy otherwise (e.g. the torch references' outputs)."""
    T, B, H, N, d = x.shape
    return x.permute(0, 1, 3, 2, 4).reshape(T, B, N, H * d).contiguous()


class _RoundSTE(torch.autograd.Function):
    """round() forward, identity backward (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class GradedLIF(nn.Module):
    """Multi-spike (integer) LIF: emits 0..max_level spikes per step; ``[T, ...] -> [T, ...]``.

    stc's choice for ``spike_mode="graded"``, after SDT v3's integer LIF (I-LIF, Yao et al.,
    "Scaling Spike-driven Transformer with Efficient Spike Firing Approximation Training",
    TPAMI 2025): with V[-1] = 0,

        H[t] = V[t-1] + (X[t] - V[t-1]) / tau        (charge, as LIF with decay_input)
        S[t] = round(clamp(H[t], 0, max_level))       (integer spike count, unit threshold)
        V[t] = H[t] - S[t]                            (soft reset by the emitted count)

    Backward: straight-through: dS/dH = 1 for 0 <= H <= max_level, else 0 (the clamp's
    gradient); the reset is detached. S is a small non-negative integer (a Loihi 2 graded
    spike payload, or up to max_level binary spikes on other hardware). Unlike SDT v3 the
    output is not divided by max_level, so attention scores stay exact integers.

    Args:
        tau: membrane time constant in timesteps (> 0).
        max_level: largest spike count per step (int >= 1; SDT v3 uses 4).

    Raises:
        TypeError / ValueError: bad tau or max_level; x not a float tensor of rank >= 1.
    """

    def __init__(self, tau: float = 2.0, max_level: int = 4) -> None:
        super().__init__()
        self.tau = check_positive("tau", tau)
        if isinstance(max_level, bool) or not isinstance(max_level, int) or max_level < 1:
            raise ValueError(f"max_level must be an int >= 1, got {max_level!r}")
        self.max_level = max_level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, min_dim=1, dtypes=(torch.float32, torch.float16, torch.bfloat16))
        v = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            h = v + (x[t] - v) / self.tau
            s = _RoundSTE.apply(h.clamp(0.0, float(self.max_level)))
            v = h - s.detach()
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, max_level={self.max_level}"


class SSA(nn.Module):
    """Spikformer spiking self-attention: ``[T, B, N, D] -> [T, B, N, D]`` (binary spikes).

    Structure (official ``SSA``; attribute names as cifar10/model.py):
        Q = q_lif(q_bn(q_linear(x)))  (same for K, V)       -> heads [T, B, H, N, d]
        A = attn_lif(q @ (k^T @ v) * scale)   (v_th = 0.5)  (op: stc.kernels.attention.ssa)
        out = proj_lif(proj_bn(proj_linear(A)))
    All LIFs: tau 2, hard reset 0, detach_reset, v_th 1 unless stated. The block adds the
    residual outside (x = x + SSA(x)).

    Args:
        dim: D, channels (divisible by num_heads).
        num_heads: H; d = D / H.
        scale: s (0.125 in the official code).
        backend: "auto" | "triton" | "torch", for the attention op and the LIFs.
        qkv_bias: bias on q/k/v_linear. Default False as the ImageNet code's Conv1d
            (bias=False); the CIFAR code's nn.Linear has biases (pass True to load it).
        proj_bias: bias on proj_linear (True in both official variants).

    Raises:
        TypeError / ValueError: dim or num_heads not positive ints, dim % num_heads != 0,
            non-numeric or non-finite scale, unknown backend; at call, x not a float tensor
            [T, B, N, dim].
    """

    def __init__(self, dim: int, num_heads: int, scale: float = 0.125, backend: str = "auto",
                 qkv_bias: bool = False, proj_bias: bool = True) -> None:
        super().__init__()
        self.dim, self.num_heads = _check_heads("dim", dim, num_heads)
        self.scale = check_number("scale", scale)
        self.backend = str(check_choice("backend", backend, ("auto", "triton", "torch")))
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_linear", nn.Linear(dim, dim, bias=qkv_bias))
            setattr(self, f"{name}_bn", nn.BatchNorm1d(dim))
            setattr(self, f"{name}_lif", self._neuron())
        self.attn_lif = LIF(tau=2.0, v_th=0.5, backend=backend)
        self.proj_linear = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = LIF(tau=2.0, backend=backend)

    def _neuron(self) -> nn.Module:
        return LIF(tau=2.0, backend=self.backend)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [T, B, N, D] -> q, k, v spikes [T, B, H, N, d]."""
        out = []
        for name in ("q", "k", "v"):
            y = _linear_bn(getattr(self, f"{name}_linear"), getattr(self, f"{name}_bn"), x)
            out.append(split_heads(getattr(self, f"{name}_lif")(y), self.num_heads))
        return out[0], out[1], out[2]

    def spike_max(self) -> float:
        """Largest value q, k, v can hold (binary LIF spikes: 1), declared to the op so the
        Triton kernel plans its exact tensor-core dots without reading the device."""
        return 1.0

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The attention op on per-head spikes: [T, B, H, N, d] -> [T, B, H, N, d] (pre-LIF)."""
        return ssa(q, k, v, scale=self.scale, backend=self.backend, max_value=self.spike_max())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_tokens(x, self.dim)
        q, k, v = self._qkv(x)
        a = self.attn_lif(merge_heads(self.attend(q, k, v)))
        return self.proj_lif(_linear_bn(self.proj_linear, self.proj_bn, a))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, scale={self.scale}"


class SDSA(nn.Module):
    """Spike-driven self-attention (SDT v1): ``[T, B, N, D] -> [T, B, N, D]`` (membrane values).

    Structure (official ``MS_SSA_Conv``; 1x1 Conv2d over channels -> nn.Linear over D, names
    kept):
        s = shortcut_lif(x)          (membrane shortcut: LIF first; alias ``head_lif``)
        Q = q_lif(q_bn(q_conv(s)))   (same for K, V; convs without bias) -> [T, B, H, N, d]
        A = q * talking_heads_lif(sum_N(k * v))   (v_th = 0.5)   (op: stc.kernels.attention.sdsa)
        out = proj_bn(proj_conv(A))  (proj conv with bias, no LIF after it)
    The official forward also adds the residual (x + out) inside the module; here the block
    adds it (x = x + SDSA(x)), as for SSA. The official ``talking_heads`` Conv1d and
    ``attn_lif`` are constructed but never used in its forward; they are omitted (drop
    ``talking_heads.weight`` when loading an official checkpoint).

    Args:
        dim: D (divisible by num_heads). num_heads: H.
        backend: "auto" | "triton" | "torch", for the op and the LIFs.

    Raises:
        TypeError / ValueError: bad dim/num_heads; at call, x not a float tensor [T, B, N, dim].
    """

    def __init__(self, dim: int, num_heads: int, backend: str = "auto") -> None:
        super().__init__()
        self.dim, self.num_heads = _check_heads("dim", dim, num_heads)
        self.backend = str(check_choice("backend", backend, ("auto", "triton", "torch")))
        self.shortcut_lif = LIF(tau=2.0, backend=backend)
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_conv", nn.Linear(dim, dim, bias=False))
            setattr(self, f"{name}_bn", nn.BatchNorm1d(dim))
            setattr(self, f"{name}_lif", LIF(tau=2.0, backend=backend))
        self.talking_heads_v_th = 0.5
        self.proj_conv = nn.Linear(dim, dim, bias=True)
        self.proj_bn = nn.BatchNorm1d(dim)

    @property
    def head_lif(self) -> nn.Module:
        """The membrane-shortcut LIF applied to the input (official name: shortcut_lif)."""
        return self.shortcut_lif

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_tokens(x, self.dim)
        s = self.shortcut_lif(x)
        heads = []
        for name in ("q", "k", "v"):
            y = _linear_bn(getattr(self, f"{name}_conv"), getattr(self, f"{name}_bn"), s)
            heads.append(split_heads(getattr(self, f"{name}_lif")(y), self.num_heads))
        a = sdsa(*heads, v_th=self.talking_heads_v_th, backend=self.backend)
        return _linear_bn(self.proj_conv, self.proj_bn, merge_heads(a))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}"


class DSFormerAttention(SSA):
    """DSFormer attention (stc): SSA's structure with windowed top-k sparse spike attention.

    ``[T, B, N, D] -> [T, B, N, D]`` (binary spikes). Q, K, V = SN(BN(Linear(x))) where SN is
    ``LIF`` for spike_mode "binary" or ``GradedLIF(max_level)`` (integers 0..max_level) for
    "graded"; A = attn_lif(dsformer(q, k, v, window_size, sparse_ratio, scale)) with
    v_th = 0.5; out = proj_lif(proj_bn(proj_linear(A))). Parameter names as ``SSA``.
    window_size = 1, sparse_ratio = 1, spike_mode "binary" is Spikformer's SSA exactly.

    Args:
        embed_dim: D (divisible by num_heads). num_heads: H.
        spike_mode: "binary" | "graded".
        window_size: timesteps per attention window (>= 1; the last window may be shorter).
        sparse_ratio: fraction of keys kept per query row, in (0, 1].
        scale: output scale (0.125). backend: "auto" | "triton" | "torch".
        max_level: largest graded spike count (graded mode only).
        qkv_bias, proj_bias: as ``SSA``.

    Raises:
        ValueError: embed_dim not divisible by num_heads, sparse_ratio outside (0, 1],
            window_size < 1, unknown spike_mode (each naming the value); at call, x not
            [T, B, N, embed_dim].
        TypeError: non-int embed_dim/num_heads/window_size.

    Source: shared/reference/attention.md ("DSFormer attention: stc's definition").
    """

    def __init__(self, embed_dim: int, num_heads: int, spike_mode: str = "binary",
                 window_size: int = 1, sparse_ratio: float = 1.0, scale: float = 0.125,
                 backend: str = "auto", max_level: int = 4, qkv_bias: bool = False,
                 proj_bias: bool = True) -> None:
        self.spike_mode = str(check_choice("spike_mode", spike_mode, SPIKE_MODES))
        self.window_size = check_window_size(window_size)
        self.sparse_ratio = check_sparse_ratio(sparse_ratio)
        self.max_level = max_level
        super().__init__(embed_dim, num_heads, scale=scale, backend=backend,
                         qkv_bias=qkv_bias, proj_bias=proj_bias)
        self.embed_dim = embed_dim

    def _neuron(self) -> nn.Module:
        if self.spike_mode == "graded":
            return GradedLIF(tau=2.0, max_level=self.max_level)
        return LIF(tau=2.0, backend=self.backend)

    def spike_max(self) -> float:
        return float(self.max_level) if self.spike_mode == "graded" else 1.0

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return dsformer(q, k, v, window_size=self.window_size, sparse_ratio=self.sparse_ratio,
                        scale=self.scale, backend=self.backend, max_value=self.spike_max())

    def extra_repr(self) -> str:
        return (f"embed_dim={self.dim}, num_heads={self.num_heads}, "
                f"spike_mode={self.spike_mode!r}, window_size={self.window_size}, "
                f"sparse_ratio={self.sparse_ratio}, scale={self.scale}")
