"""Typed IR nodes (NIR-style dataclasses): one class per operation.

Every node has a unique ``name``, the names of the nodes it reads (``inputs``), its output
``shape`` per sample and per timestep (the leading T and B axes are implicit), and ``params``:
a map from parameter slot (``"weight"``, ``"bias"``, ...) to a tensor name in the graph's
tensor dict. Attributes of an operation are plain typed fields, so a node serialises to JSON
with ``dataclasses.asdict``.

Time: values flow as ``[T, B, *shape]`` ("temporal") after a :class:`Repeat` encoder or from a
temporal :class:`Input`, and as ``[B, *shape]`` after :class:`TimeMean`.

Sources: NIR node set (Pedersen et al., Nat. Commun. 15:8122, 2024); stc CONTRIBUTING.md
contracts for LIF and attention; shared/reference/lava.md for LoihiCubaLIF.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(kw_only=True)
class Node:
    """Base of every IR node.

    Attributes:
        name: unique node name (also the key of its output value).
        inputs: names of the producing nodes, in argument order.
        shape: output shape per sample and timestep (no T, no B), ints > 0.
        params: parameter slot -> tensor name in ``Graph.tensors``.
    """

    OP: ClassVar[str] = "Node"
    PARAMS: ClassVar[tuple[str, ...]] = ()  # required slots
    OPTIONAL: ClassVar[tuple[str, ...]] = ()  # optional slots
    ARITY: ClassVar[int] = 1  # number of inputs (-1: any >= 1)
    ANY_PARAMS: ClassVar[bool] = False  # slots are free-form (a module's state_dict keys)
    SPIKING: ClassVar[bool] = False  # emits spikes (counted in spike statistics)

    name: str
    inputs: list[str] = field(default_factory=list)
    shape: tuple[int, ...] = ()
    params: dict[str, str] = field(default_factory=dict)

    def attrs(self) -> dict:
        """Operation attributes (every dataclass field except the common four)."""
        common = {"name", "inputs", "shape", "params"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in common}


@dataclass(kw_only=True)
class Input(Node):
    """Graph input. ``temporal``: the caller passes [B, T, *shape] (True) or [B, *shape]."""

    OP: ClassVar[str] = "Input"
    ARITY: ClassVar[int] = 0
    temporal: bool = False
    datatype: str = "FP32"


@dataclass(kw_only=True)
class Output(Node):
    """Graph output; copies its single input."""

    OP: ClassVar[str] = "Output"


@dataclass(kw_only=True)
class Repeat(Node):
    """Direct encoder: repeats a static [B, *shape] input T = ``time_steps`` times."""

    OP: ClassVar[str] = "Repeat"
    time_steps: int = 4


@dataclass(kw_only=True)
class Linear(Node):
    """y = x W^T + b over the last axis. weight [out, in], bias [out] (optional)."""

    OP: ClassVar[str] = "Linear"
    PARAMS: ClassVar[tuple[str, ...]] = ("weight",)
    OPTIONAL: ClassVar[tuple[str, ...]] = ("bias",)
    in_features: int = 0
    out_features: int = 0


@dataclass(kw_only=True)
class Conv2d(Node):
    """2-D convolution on [C, H, W]; weight [Cout, Cin/groups, kH, kW], bias [Cout]."""

    OP: ClassVar[str] = "Conv2d"
    PARAMS: ClassVar[tuple[str, ...]] = ("weight",)
    OPTIONAL: ClassVar[tuple[str, ...]] = ("bias",)
    in_channels: int = 0
    out_channels: int = 0
    kernel_size: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


@dataclass(kw_only=True)
class Conv1d(Node):
    """1-D convolution on [C, L]; weight [Cout, Cin/groups, k], bias [Cout] (NIR Conv1d)."""

    OP: ClassVar[str] = "Conv1d"
    PARAMS: ClassVar[tuple[str, ...]] = ("weight",)
    OPTIONAL: ClassVar[tuple[str, ...]] = ("bias",)
    in_channels: int = 0
    out_channels: int = 0
    kernel_size: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1


@dataclass(kw_only=True)
class Delay(Node):
    """Per-element delay by whole timesteps: y[t] = x[t - d] (0 before the first input);
    ``steps`` [shape] int (NIR Delay's delay / dt, rounded)."""

    OP: ClassVar[str] = "Delay"
    PARAMS: ClassVar[tuple[str, ...]] = ("steps",)


@dataclass(kw_only=True)
class BatchNorm(Node):
    """Inference batch norm over channel ``axis`` of the per-sample shape (0 for [C, H, W];
    the last axis for tokens [N, D], as BatchNorm1d on [T*B*N, D] in Spikformer/SDT).

    y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, all [C].
    """

    OP: ClassVar[str] = "BatchNorm"
    PARAMS: ClassVar[tuple[str, ...]] = ("running_mean", "running_var")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("weight", "bias")
    num_features: int = 0
    eps: float = 1e-5
    axis: int = 0


@dataclass(kw_only=True)
class Pool2d(Node):
    """2-D pooling on [C, H, W]: kind "max" | "avg" | "sum" (sum = avg * kH * kW)."""

    OP: ClassVar[str] = "Pool2d"
    kind: str = "max"
    kernel_size: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (0, 0)


@dataclass(kw_only=True)
class Flatten(Node):
    """Flattens per-sample axes ``start_dim``..``end_dim`` (0-based, per sample, inclusive)."""

    OP: ClassVar[str] = "Flatten"
    start_dim: int = 0
    end_dim: int = -1


@dataclass(kw_only=True)
class Add(Node):
    """Elementwise sum of two or more inputs of one shape (residual connections)."""

    OP: ClassVar[str] = "Add"
    ARITY: ClassVar[int] = -1


@dataclass(kw_only=True)
class Concat(Node):
    """Concatenation of two or more inputs along per-sample ``axis`` (0 = channels of
    [C, H, W]); the other axes must agree (ONNX Concat / torch.cat without the batch axis)."""

    OP: ClassVar[str] = "Concat"
    ARITY: ClassVar[int] = -1
    axis: int = 0


@dataclass(kw_only=True)
class Scale(Node):
    """y = x * scale: a scalar ``factor``, or a ``scale`` tensor broadcast over the shape."""

    OP: ClassVar[str] = "Scale"
    OPTIONAL: ClassVar[tuple[str, ...]] = ("scale",)
    factor: float = 1.0


@dataclass(kw_only=True)
class LIF(Node):
    """Float LIF with stc.nn.LIF semantics (SpikingJelly LIFNode): tau in timesteps,
    fire when H >= v_th, hard reset to v_reset or soft reset (v_reset None)."""

    OP: ClassVar[str] = "LIF"
    SPIKING: ClassVar[bool] = True
    tau: float = 2.0
    v_th: float = 1.0
    v_reset: float | None = 0.0
    decay_input: bool = True


@dataclass(kw_only=True)
class IF(Node):
    """Float integrate-and-fire: H = V + X; fire when H >= v_th; reset as LIF."""

    OP: ClassVar[str] = "IF"
    SPIKING: ClassVar[bool] = True
    v_th: float = 1.0
    v_reset: float | None = 0.0


@dataclass(kw_only=True)
class CubaLIF(Node):
    """Float current-based LIF with per-neuron tensors (discretised NIR CubaLIF/LIF/LI/IF).

    Per step (forward Euler, all tensors broadcast to ``shape``):
        i = i * (1 - i_decay) + i_gain * x        (has_synapse) else i = x
        v = v * (1 - v_decay) + v_decay * v_leak + v_gain * i
        s = v > v_th (strict, NIR; v >= v_th with ``fire_ge``, stc.nn.CubaLIF);
        v = v_reset where s
    ``output`` "spikes" returns s; "v" returns v and never fires (an LI readout).
    Slots: i_decay, i_gain (with a synapse), v_decay, v_gain, v_leak, v_th, v_reset;
    recurrent (NIR cycles neuron -> Linear/Affine -> neuron, snnTorch RLeaky/RSynaptic):
    ``w_rec`` [n, n] and ``b_rec`` [n] add W_rec s[t-1] + b_rec to the input x[t] of every step
    (s[-1] = 0), on the flattened neuron axis.
    """

    OP: ClassVar[str] = "CubaLIF"
    SPIKING: ClassVar[bool] = True
    PARAMS: ClassVar[tuple[str, ...]] = ("v_decay", "v_gain", "v_leak", "v_th", "v_reset")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("i_decay", "i_gain", "w_rec", "b_rec")
    has_synapse: bool = False
    output: str = "spikes"
    fire_ge: bool = False


@dataclass(kw_only=True)
class LoihiCubaLIF(Node):
    """Loihi 2 fixed-point CUBA LIF (Lava fixed_pt, shared/reference/lava.md), per step:
        u = trunc(u * (4096 - i_decay) / 4096) + (a << 6)
        v = trunc(v * (4096 - v_decay) / 4096) + u + (bias << bias_exp)
        s = v > (v_th_mant << 6); v = 0 where s.
    The decays round toward zero (sign(y) * (|y| >> 12), as Lava does; not an arithmetic
    shift, which rounds negative values down). u wraps at 24 bits (two's complement), v
    saturates at +-2**23.
    The bias is shifted by ``bias_exp`` (6 as netx; 0 for stc.passes.quantize's tie offset).
    ``a`` is the integer synaptic input of the preceding layer (same step: delay-free timing).
    Optional slot ``bias`` [shape] int32."""

    OP: ClassVar[str] = "LoihiCubaLIF"
    SPIKING: ClassVar[bool] = True
    OPTIONAL: ClassVar[tuple[str, ...]] = ("bias",)
    i_decay: int = 4096
    v_decay: int = 0
    v_th_mant: int = 64
    bias_exp: int = 6  # v gets (bias << bias_exp); netx uses 6


@dataclass(kw_only=True)
class SpikeAttention(Node):
    """Spiking self-attention on tokens [N, D] -> [N, D] with stc.nn.attention semantics
    (CONTRIBUTING.md contract): ``kind`` "ssa" (Spikformer SSA: q/k/v Linear+BN+LIF,
    q (k^T v) * scale, LIF(v_th 0.5), proj Linear+BN+LIF), "sdsa" (Spike-driven Transformer:
    shortcut LIF, q/k/v Linear+BN+LIF, q * LIF(sum_N k*v), proj Linear+BN) or "dsformer"
    (windowed top-k sparse attention, shared/reference/attention.md). Parameter slots are the
    module's state_dict keys (e.g. "q_linear.weight", "proj_bn.running_mean"); the runtime
    rebuilds the stc.nn.attention module from these attributes and tensors alone."""

    OP: ClassVar[str] = "SpikeAttention"
    SPIKING: ClassVar[bool] = True
    ANY_PARAMS: ClassVar[bool] = True
    kind: str = "ssa"
    dim: int = 0
    num_heads: int = 1
    scale: float = 0.125
    spike_mode: str = "binary"
    window_size: int = 1
    sparse_ratio: float = 1.0
    max_level: int = 4


@dataclass(kw_only=True)
class AttentionCore(Node):
    """The product stage of SSA / DSFormer attention on q, k, v spikes: inputs [q, k, v], each
    [N, D] with D = num_heads * d (head-major channels), output [N, D], pre-LIF.

    Per head, within temporal windows of ``window_size`` steps (the last may be shorter; they
    restart every sample), S = Q_w K_w^T over the w*N tokens of the window, each query row keeps
    the scores >= its k-th largest, k = max(1, ceil(sparse_ratio * w N)) (ties kept), and
    O = S_sparse V_w (shared/reference/attention.md, "DSFormer attention: stc's definition").
    SSA is window_size = sparse_ratio = 1: O = Q (K^T V).
    Float numerics: O * ``scale`` (what stc.nn.attention's ``attend`` returns). Fixed numerics:
    the integer O * ``gain`` (stc.passes.quantize sets ``gain`` and folds ``scale`` into the
    next LoihiCubaLIF's threshold).
    """

    OP: ClassVar[str] = "AttentionCore"
    ARITY: ClassVar[int] = 3
    num_heads: int = 1
    scale: float = 0.125
    window_size: int = 1
    sparse_ratio: float = 1.0
    gain: int = 1


@dataclass(kw_only=True)
class SDSACore(Node):
    """The product stage of SDSA (Spike-driven Transformer v1, Yao et al. 2023, eq. 8-9) on
    q, k, v spikes [N, D]: ``q * LIF_{v_th}(sum_N(k * v))``, output spikes [N, D]; the LIF
    (tau 2, hard reset 0, decay_input) runs per channel over T. For binary spikes and
    v_th = 0.5 it is exactly ``q * (sum_N(k * v) >= 1)`` (memoryless), which is what fixed
    numerics compute (stc.passes.lower_attention)."""

    OP: ClassVar[str] = "SDSACore"
    SPIKING: ClassVar[bool] = True
    ARITY: ClassVar[int] = 3
    num_heads: int = 1
    v_th: float = 0.5


@dataclass(kw_only=True)
class ToTokens(Node):
    """Feature map to tokens: [C, H, W] -> [N = H*W, D = C] (row-major, Spikformer's
    ``flatten(3).transpose(-1, -2)``)."""

    OP: ClassVar[str] = "ToTokens"


@dataclass(kw_only=True)
class TokenMean(Node):
    """Mean over the token axis: [N, D] -> [D] (classification head of Spikformer/SDT)."""

    OP: ClassVar[str] = "TokenMean"


@dataclass(kw_only=True)
class TimeMean(Node):
    """Mean over the T axis: [T, B, *shape] -> [B, *shape] (rate readout)."""

    OP: ClassVar[str] = "TimeMean"


NODE_TYPES: dict[str, type[Node]] = {
    cls.OP: cls
    for cls in (Input, Output, Repeat, Linear, Conv1d, Conv2d, Delay, BatchNorm, Pool2d,
                Flatten, Add, Concat, Scale, LIF, IF, CubaLIF, LoihiCubaLIF, SpikeAttention,
                AttentionCore, SDSACore, ToTokens, TokenMean, TimeMean)
}
NEURON_OPS = ("LIF", "IF", "CubaLIF", "LoihiCubaLIF")
SYNAPSE_OPS = ("Linear", "Conv2d")  # Conv1d: float numerics only
