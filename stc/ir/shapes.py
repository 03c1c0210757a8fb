"""Shape inference for IR nodes: per-sample, per-timestep output shapes (no T, no B)."""

from __future__ import annotations

import math

from .errors import GraphError
from .nodes import Node


def _conv_out(size: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


OIP_DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                 "INT64", "FP16", "FP32", "FP64", "BF16")


def _check_attrs(node: Node, fail) -> None:
    """Value ranges of neuron and I/O attributes (types are checked when parsing)."""
    op = node.OP
    if op == "Input" and node.datatype not in OIP_DATATYPES:
        raise fail(f"datatype must be an OIP datatype, got {node.datatype!r}")
    if op == "LIF" and not node.tau > 0:
        raise fail(f"tau must be > 0 (timesteps), got {node.tau}")
    if op == "CubaLIF" and node.output not in ("spikes", "v"):
        raise fail(f"output must be 'spikes' or 'v', got {node.output!r}")
    if op == "LoihiCubaLIF":
        if not (1 <= node.i_decay <= 4096 and 0 <= node.v_decay <= 4096):
            raise fail(f"i_decay must be in 1..4096 and v_decay in 0..4096, got "
                       f"{node.i_decay}, {node.v_decay}")
        if not 0 <= node.v_th_mant < 1 << 17:
            raise fail(f"v_th_mant must be in 0..2**17-1, got {node.v_th_mant}")


def infer_shape(graph, node: Node, ins: list[tuple[int, ...]],
                check_tensors: bool = True) -> tuple[int, ...]:
    """Output shape of ``node`` given its input shapes ``ins``.

    Raises:
        GraphError: the inputs or parameters do not fit the node (message names the node).
    """
    def fail(msg: str) -> GraphError:
        return GraphError(f"node {node.name!r} ({node.OP}): {msg}")

    def tensor_shape(slot: str) -> tuple[int, ...] | None:
        t = graph.param(node, slot) if check_tensors else None
        return None if t is None else tuple(t.shape)

    op = node.OP
    x = ins[0] if ins else ()
    _check_attrs(node, fail)
    if op == "Input":
        return tuple(node.shape)
    if op in ("Output", "Repeat", "TimeMean", "LIF", "IF", "BatchNorm", "Scale"):
        if op == "BatchNorm":
            if not x or not -len(x) <= node.axis < len(x) or x[node.axis] != node.num_features:
                raise fail(f"input shape {x} has no axis {node.axis} of num_features="
                           f"{node.num_features} channels")
            for slot in node.params:
                ts = tensor_shape(slot)
                if ts is not None and ts != (node.num_features,):
                    raise fail(f"parameter {slot!r} has shape {ts}, "
                               f"expected ({node.num_features},)")
        if op == "Repeat" and not 1 <= node.time_steps <= 100_000:
            raise fail(f"time_steps must be in 1..100000, got {node.time_steps}")
        return x
    if op == "Delay":
        ts = tensor_shape("steps")
        if ts is not None and math.prod(ts) not in (1, math.prod(x)):
            raise fail(f"steps has shape {ts}; expected one value or {x}")
        return x
    if op == "Conv1d":
        if len(x) != 2:
            raise fail(f"expects a [C, L] input, got shape {x}")
        c, n_in = x
        if min(node.kernel_size, node.stride, node.dilation) < 1 or node.padding < 0:
            raise fail("kernel_size, stride and dilation must be >= 1 and padding >= 0")
        lo = _conv_out(n_in, node.kernel_size, node.stride, node.padding, node.dilation)
        if lo < 1:
            raise fail(f"output would be empty for input {x}")
        g = node.groups
        if c != node.in_channels or g < 1 or c % g or node.out_channels % g:
            raise fail(f"input has {c} channels; expected in_channels={node.in_channels} "
                       f"divisible by groups={g}")
        ws = tensor_shape("weight")
        want = (node.out_channels, c // g, node.kernel_size)
        if ws is not None and ws != want:
            raise fail(f"weight has shape {ws}, expected {want}")
        bs = tensor_shape("bias")
        if bs is not None and bs != (node.out_channels,):
            raise fail(f"bias has shape {bs}, expected ({node.out_channels},)")
        return (node.out_channels, lo)
    if op in ("CubaLIF", "LoihiCubaLIF"):
        n = math.prod(x)
        if op == "CubaLIF":
            ws, bs = tensor_shape("w_rec"), tensor_shape("b_rec")
            if ws is not None and ws != (n, n):
                raise fail(f"w_rec has shape {ws}, expected ({n}, {n})")
            if bs is not None and bs != (n,):
                raise fail(f"b_rec has shape {bs}, expected ({n},)")
        for slot in node.params:
            if slot in ("w_rec", "b_rec"):
                continue
            ts = tensor_shape(slot)
            if ts is not None and math.prod(ts) not in (1, math.prod(x)):
                raise fail(f"parameter {slot!r} has shape {ts}; expected one value or {x}")
        return x
    if op == "Linear":
        if not x or x[-1] != node.in_features:
            raise fail(f"input's last axis is {x[-1] if x else None}, expected "
                       f"in_features={node.in_features}")
        ws = tensor_shape("weight")
        if ws is not None and ws != (node.out_features, node.in_features):
            raise fail(f"weight has shape {ws}, expected "
                       f"({node.out_features}, {node.in_features})")
        bs = tensor_shape("bias")
        if bs is not None and bs != (node.out_features,):
            raise fail(f"bias has shape {bs}, expected ({node.out_features},)")
        return (*x[:-1], node.out_features)
    if op in ("Conv2d", "Pool2d"):
        if len(x) != 3:
            raise fail(f"expects a [C, H, W] input, got shape {x}")
        c, h, w = x
        k, s, p = node.kernel_size, node.stride, node.padding
        d = node.dilation if op == "Conv2d" else (1, 1)
        if min(*k, *s, *d) < 1 or min(p) < 0:
            raise fail("kernel_size, stride and dilation must be >= 1 and padding >= 0")
        if op == "Pool2d" and (2 * p[0] > k[0] or 2 * p[1] > k[1]):
            raise fail(f"padding {p} must be at most half of kernel_size {k}")
        ho, wo = _conv_out(h, k[0], s[0], p[0], d[0]), _conv_out(w, k[1], s[1], p[1], d[1])
        if ho < 1 or wo < 1:
            raise fail(f"output would be empty for input {x}")
        if op == "Pool2d":
            if node.kind not in ("max", "avg", "sum"):
                raise fail(f"kind must be 'max', 'avg' or 'sum', got {node.kind!r}")
            return (c, ho, wo)
        if c != node.in_channels:
            raise fail(f"input has {c} channels, expected in_channels={node.in_channels}")
        g = node.groups
        if g < 1 or c % g or node.out_channels % g:
            raise fail(f"groups={g} must divide in_channels and out_channels")
        ws = tensor_shape("weight")
        want = (node.out_channels, c // g, *k)
        if ws is not None and ws != want:
            raise fail(f"weight has shape {ws}, expected {want}")
        bs = tensor_shape("bias")
        if bs is not None and bs != (node.out_channels,):
            raise fail(f"bias has shape {bs}, expected ({node.out_channels},)")
        return (node.out_channels, ho, wo)
    if op == "Flatten":
        n = len(x)
        a = node.start_dim % n if n else 0
        b = node.end_dim % n if n else 0
        if n == 0 or a > b:
            raise fail(f"cannot flatten dims {node.start_dim}..{node.end_dim} of shape {x}")
        return (*x[:a], math.prod(x[a:b + 1]), *x[b + 1:])
    if op == "Add":
        if any(s != x for s in ins):
            raise fail(f"inputs have different shapes {ins}")
        return x
    if op == "Concat":
        nd = len(x)
        if nd == 0 or not -nd <= node.axis < nd:
            raise fail(f"axis {node.axis} is outside the per-sample shape {x}")
        a = node.axis % nd
        if any(len(s) != nd or s[:a] + s[a + 1:] != x[:a] + x[a + 1:] for s in ins):
            raise fail(f"inputs {ins} differ outside axis {node.axis}")
        return (*x[:a], sum(s[a] for s in ins), *x[a + 1:])
    if op == "ToTokens":
        if len(x) != 3:
            raise fail(f"expects a [C, H, W] input, got shape {x}")
        return (x[1] * x[2], x[0])
    if op == "TokenMean":
        if len(x) != 2:
            raise fail(f"expects tokens [N, D], got shape {x}")
        return (x[1],)
    if op == "SpikeAttention":
        if len(x) != 2 or x[1] != node.dim:
            raise fail(f"expects tokens [N, {node.dim}], got shape {x}")
        if node.num_heads < 1 or node.dim % node.num_heads:
            raise fail(f"num_heads={node.num_heads} must divide dim={node.dim}")
        if node.kind not in ("ssa", "sdsa", "dsformer"):
            raise fail(f"kind must be 'ssa', 'sdsa' or 'dsformer', got {node.kind!r}")
        return x
    if op == "AttentionCore":
        if any(s != x for s in ins) or len(x) != 2:
            raise fail(f"expects q, k, v tokens [N, D] of one shape, got {ins}")
        if node.num_heads < 1 or x[1] % node.num_heads:
            raise fail(f"num_heads={node.num_heads} must divide D={x[1]}")
        if node.window_size < 1 or not 0 < node.sparse_ratio <= 1:
            raise fail(f"window_size must be >= 1 and sparse_ratio in (0, 1], got "
                       f"{node.window_size}, {node.sparse_ratio}")
        if isinstance(node.gain, bool) or not isinstance(node.gain, int) or node.gain < 1:
            raise fail(f"gain must be an int >= 1, got {node.gain!r}")
        return x
    if op == "SDSACore":
        if any(s != x for s in ins) or len(x) != 2:
            raise fail(f"expects q, k, v tokens [N, D] of one shape, got {ins}")
        if node.num_heads < 1 or x[1] % node.num_heads:
            raise fail(f"num_heads={node.num_heads} must divide D={x[1]}")
        return x
    raise fail("no shape rule for this op")
