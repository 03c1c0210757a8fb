"""Load-time precision plan for fixed numerics: exact integer sums through float matmuls.

CUDA has no integer matmul, convolution or pooling, so the fixed runtime computes every
integer synaptic sum in floating point and proves, once per graph (when it is loaded, from the
quantised weights and the input bounds), that each sum is exact:

    every partial sum of y_o = sum_j W_oj x_j + b_o is an integer with
    |partial| <= max_o (sum_j |W_oj|) * max|x| + max|b| =: bound(y)

so a float format with a p-bit significand computes y exactly, in any summation order (BLAS
blocking, FMA, split-K), when bound(y) < 2**p: float32 (p = 24) or float64 (p = 53). The plan
also requires max|W| and max|x| <= 2**11 for float32, so the products stay exact if a GEMM
rounds its inputs to TF32 (10-bit stored mantissa); cuDNN's Winograd/FFT convolutions are
avoided on CUDA (stc.runtime.interpreter convolves through unfold + matmul there).
A layer whose bound reaches 2**53 is refused (ValueError) rather than computed inexactly.

Bounds propagate along the graph: an Input's bound comes from ``input_bounds`` (name -> max
|x|), else from its datatype (BOOL 1, UINT8 255, INT8 128, INT16 2**15, otherwise 2**24: the
largest integer range a float32 feed holds exactly); spikes are 0/1; sum pooling multiplies by
the window; Add sums; an AttentionCore's O = S V is bounded by window*N * d * bq * bk * bv
times its gain. LoihiCubaLIF nodes get the bound of their synaptic input, which decides the
state width and which wrap/saturation steps can be skipped (stc.runtime.fixed_lif).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from stc.ir import Graph

F32_EXACT = 2 ** 24
F64_EXACT = 2 ** 53
TF32_OPERAND = 2 ** 11
DATATYPE_BOUND = {"BOOL": 1, "UINT8": 255, "INT8": 128, "INT16": 2 ** 15, "UINT16": 2 ** 16 - 1,
                  "INT32": 2 ** 31}
DEFAULT_INPUT_BOUND = F32_EXACT


@dataclass(frozen=True)
class NodePlan:
    """What the fixed runtime knows about one node's integer values.

    bound: max |value| over every element (inf for host-readout float values).
    dtype: torch.float32 or torch.float64, the float type that holds (and, for a synapse
        layer, computes) the node's integer values exactly; None for host float values.
    weight: the integer weight as ``dtype`` (synapse layers with integer weights), cached.
    bias: the integer bias as ``dtype`` or None (LoihiCubaLIF: the int64 bias mantissa).
    bias_bound: LoihiCubaLIF: max |bias << bias_exp|, read once at load.
    macs: synapse layers: multiply-accumulates per sample and step (for the thread choice).
    """

    bound: float
    dtype: torch.dtype | None
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    bias_bound: float = 0.0
    macs: int = 0


def _dtype(bound: float, operands: float = 0.0) -> torch.dtype:
    if bound < F32_EXACT and operands <= TF32_OPERAND:
        return torch.float32
    return torch.float64


def _int_tensor(t: torch.Tensor | None) -> bool:
    return t is not None and not t.is_floating_point()


def plan_fixed(graph: Graph, input_bounds: dict[str, float] | None = None,
               time_steps: int | None = None) -> dict[str, NodePlan]:
    """Per-node precision plan of a quantised graph (name -> :class:`NodePlan`).

    Call once when the graph is loaded; it reads every integer weight once (``.cpu()``), so
    nothing in a later forward reads the device for precision decisions.

    Args:
        graph: a verified fixed-point graph (stc.passes.quantize output or hand-built).
        input_bounds: Input name -> max |x| the caller guarantees (the runtime rejects feeds
            beyond it); default from the Input's datatype (module docstring).
        time_steps: T used for the AttentionCore window bound when a window exceeds it
            (default: the Repeat's T, else the window size).

    Raises:
        ValueError: a synapse layer or attention core whose integer sum can reach 2**53 (no
            exact float form), naming the node and the bound.
    """
    input_bounds = dict(input_bounds or {})
    plan: dict[str, NodePlan] = {}
    rep_T = next((n.time_steps for n in graph.nodes if n.OP == "Repeat"), None)

    def host() -> NodePlan:
        return NodePlan(math.inf, None)

    for n in graph.nodes:
        op = n.OP
        src = [plan[s] for s in n.inputs]
        b_in = src[0].bound if src else 0.0
        exact_in = all(p.dtype is not None for p in src)
        if op == "Input":
            b = float(input_bounds.get(n.name, DATATYPE_BOUND.get(n.datatype,
                                                                  DEFAULT_INPUT_BOUND)))
            plan[n.name] = NodePlan(b, _dtype(b))
        elif op in ("Repeat", "Flatten", "ToTokens", "Output") or (
                op == "Pool2d" and n.kind == "max"):
            plan[n.name] = src[0]
            if op in ("Flatten", "ToTokens", "Output", "Pool2d"):
                plan[n.name] = NodePlan(src[0].bound, src[0].dtype)
        elif op in ("Linear", "Conv2d"):
            w, bias = graph.param(n, "weight"), graph.param(n, "bias")
            if not exact_in or not _int_tensor(w) or (bias is not None
                                                       and bias.is_floating_point()):
                plan[n.name] = host()
                continue
            wc = w.detach().cpu().to(torch.float64)
            rows = wc.abs().reshape(wc.shape[0], -1).sum(1)
            bb = 0.0 if bias is None else float(bias.detach().cpu().abs().max())
            bound = float(rows.max()) * b_in + bb if rows.numel() else bb
            if bound >= F64_EXACT:
                raise ValueError(f"node {n.name!r}: integer sums can reach {bound:.3g} "
                                 "(>= 2**53), which no float format holds exactly; lower "
                                 "the input bound or the weights")
            dt = _dtype(bound, max(float(wc.abs().max()) if wc.numel() else 0.0, b_in))
            positions = math.prod(n.shape[1:]) if op == "Conv2d" else math.prod(n.shape[:-1])
            plan[n.name] = NodePlan(bound, dt, w.to(dt), None if bias is None else bias.to(dt),
                                    macs=w.numel() * positions)
        elif op == "Pool2d":  # sum (avg has no fixed form; the interpreter refuses it)
            bound = b_in * n.kernel_size[0] * n.kernel_size[1]
            plan[n.name] = NodePlan(bound, _dtype(bound) if exact_in else None)
        elif op == "Add":
            if not exact_in:
                plan[n.name] = host()
                continue
            bound = sum(p.bound for p in src)
            plan[n.name] = NodePlan(bound, _dtype(bound))
        elif op == "AttentionCore":
            d = n.shape[-1] // int(n.num_heads)
            tokens = n.shape[-2] * max(1, min(int(n.window_size),
                                              time_steps or rep_T or int(n.window_size)))
            bq, bk, bv = (p.bound for p in src)
            bound = tokens * d * bq * bk * bv * abs(int(n.gain))
            if bound >= F64_EXACT:
                raise ValueError(f"node {n.name!r}: attention sums can reach {bound:.3g} "
                                 "(>= 2**53), which no float format holds exactly")
            plan[n.name] = NodePlan(bound, _dtype(bound))
        elif op == "SDSACore":
            plan[n.name] = NodePlan(1.0, torch.float32)
        elif op == "LoihiCubaLIF":
            b = graph.param(n, "bias")
            bb = 0.0
            if b is not None and b.numel():
                m = int(b.detach().cpu().to(torch.int64).abs().max())
                bb = float(m << n.bias_exp if n.bias_exp >= 0 else m >> -n.bias_exp) + 1
            plan[n.name] = NodePlan(1.0, torch.float32,
                                    bias=None if b is None else b.to(torch.int64).reshape(
                                        n.shape), bias_bound=bb)
        else:  # TokenMean, TimeMean, Scale, float neurons...: host float values
            plan[n.name] = host()
    return plan


def work_per_sample_step(plan: dict[str, NodePlan]) -> int:
    """Multiply-accumulates of every exact synapse layer, per sample and timestep."""
    return sum(p.macs for p in plan.values())


def synaptic_bound(plan: dict[str, NodePlan], graph: Graph, name: str) -> float:
    """max |a| of the synaptic input of neuron ``name`` (its single input's bound)."""
    return plan[graph.node(name).inputs[0]].bound
