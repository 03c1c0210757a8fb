"""Graph interpreter: executes a verified IR graph on torch tensors, float or fixed.

Values are [T, B, *shape] where the graph is temporal (after Repeat / a temporal Input) and
[B, *shape] otherwise. Stateless layers run on T*B merged; neurons run over T.
Float neurons call stc.kernels (LIF: ``lif_multistep`` with the given kernel backend); the
fixed path computes integer synaptic inputs and LoihiCubaLIF dynamics (stc.kernels.cuba_fixed).

Fixed-mode timing is delay-free: every layer sees the previous layer's spikes of the same
step, and every neuron starts each sample at rest (u = v = 0) when that sample's first input
reaches it, biases included. This is exactly what Lava computes with netx's staggered
``reset_interval`` pipeline once its one step of latency per synapse layer is removed
(``stc.lava.executor``; shared/reference/lava.md), so a neuron bias never acts before the
layer's input arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from stc.ir import Graph, Node


@dataclass
class RunResult:
    """Outputs (name -> tensor, T-first where temporal) and per-layer spike statistics:
    ``spike_counts[name]`` total spikes of a spiking node, ``firing_rates[name]`` spikes per
    neuron per timestep, and ``spike_trains`` (name -> [T, B, ...]) when requested."""

    outputs: dict[str, torch.Tensor]
    spike_counts: dict[str, int] = field(default_factory=dict)
    firing_rates: dict[str, float] = field(default_factory=dict)
    spike_trains: dict[str, torch.Tensor] = field(default_factory=dict)


def _merged(fn, x: torch.Tensor, temporal: bool) -> torch.Tensor:
    if not temporal:
        return fn(x)
    T, B = x.shape[:2]
    y = fn(x.reshape(T * B, *x.shape[2:]))
    return y.reshape(T, B, *y.shape[1:])


def _if_loop(x: torch.Tensor, v_th: float, v_reset: float | None) -> torch.Tensor:
    v = torch.zeros_like(x[0]) + (0.0 if v_reset is None else v_reset)
    out = []
    for t in range(x.shape[0]):
        h = v + x[t]
        s = (h >= v_th).to(x.dtype)
        v = h - v_th * s if v_reset is None else h * (1 - s) + v_reset * s
        out.append(s)
    return torch.stack(out)


def _cuba_loop(graph: Graph, n: Node, x: torch.Tensor) -> torch.Tensor:
    def p(slot: str) -> torch.Tensor:
        return graph.param(n, slot).to(x.dtype).to(x.device).reshape(-1).reshape(
            () if graph.param(n, slot).numel() == 1 else n.shape)

    v_decay, v_gain, v_leak, v_th, v_reset = (p(s) for s in
                                             ("v_decay", "v_gain", "v_leak", "v_th", "v_reset"))
    w_rec, b_rec = graph.param(n, "w_rec"), graph.param(n, "b_rec")
    if w_rec is not None:
        w_rec = w_rec.to(x.dtype).to(x.device)
        b_rec = None if b_rec is None else b_rec.to(x.dtype).to(x.device)
    i = torch.zeros_like(x[0])
    v = torch.zeros_like(x[0])
    s_prev = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        if w_rec is not None:  # NIR cycle: the previous step's spikes through W_rec
            rec = F.linear(s_prev.reshape(s_prev.shape[0], -1), w_rec, b_rec)
            x_t = x[t] + rec.reshape(x[t].shape)
        else:
            x_t = x[t]
        if n.has_synapse:
            i = i * (1 - p("i_decay")) + p("i_gain") * x_t
        else:
            i = x_t
        v = v * (1 - v_decay) + v_decay * v_leak + v_gain * i
        if n.output == "v":
            out.append(v)
            continue
        s = v >= v_th if n.fire_ge else v > v_th
        v = torch.where(s, v_reset.expand_as(v), v)
        s_prev = s.to(x.dtype)
        out.append(s_prev)
    return torch.stack(out)


def _loihi(graph: Graph, n: Node, x: torch.Tensor, kernel_backend: str) -> torch.Tensor:
    """Integer CUBA-LIF through stc.kernels.cuba_fixed (Lava registers: du = i_decay - 1)."""
    from stc.kernels.cuba_fixed import cuba_lif_fixed

    if not 1 <= n.i_decay <= 4096:
        raise ValueError(f"node {n.name!r}: i_decay must be in 1..4096, got {n.i_decay}")
    b = graph.param(n, "bias")
    bias = 0 if b is None else b.to(torch.int32).to(x.device).reshape(n.shape)
    s, _, _ = cuba_lif_fixed(x.to(torch.int32).contiguous(), n.i_decay - 1, n.v_decay,
                             n.v_th_mant, bias, int(n.bias_exp), backend=kernel_backend)
    return s.to(torch.int64)


def _attention_core(n: Node, ins: list[torch.Tensor], fixed: bool,
                    kernel_backend: str) -> torch.Tensor:
    """AttentionCore on q, k, v [T, B, N, D]: float O * scale through stc.kernels.attention
    (the op stc.nn.attention's modules call), or fixed integer O * gain (float64 reference,
    exact for integers below 2**53)."""
    from stc.kernels.attention import dsformer, dsformer_reference, ssa
    from stc.nn.attention import merge_heads, split_heads

    h = int(n.num_heads)
    if fixed:
        q, k, v = (split_heads(z.to(torch.float64), h) for z in ins)
        o = dsformer_reference(q, k, v, int(n.window_size), float(n.sparse_ratio), 1.0)
        return merge_heads(o).round().to(torch.int64) * int(n.gain)
    q, k, v = (split_heads(z, h) for z in ins)
    if n.window_size == 1 and n.sparse_ratio == 1.0:
        o = ssa(q, k, v, scale=n.scale, backend=kernel_backend)
    else:
        o = dsformer(q, k, v, window_size=n.window_size, sparse_ratio=n.sparse_ratio,
                     scale=n.scale, backend=kernel_backend)
    return merge_heads(o)


def attention_module(graph: Graph, n: Node, kernel_backend: str) -> torch.nn.Module:
    """Rebuild the stc.nn.attention module of a SpikeAttention node from its attributes and
    tensors (strict state_dict load: a missing or extra tensor raises ValueError)."""
    from stc.nn import attention as A

    state = {slot: graph.tensors[key] for slot, key in n.params.items()}
    bias = {"qkv_bias": "q_linear.bias" in state, "proj_bias": "proj_linear.bias" in state}
    if n.kind == "ssa":
        mod = A.SSA(n.dim, n.num_heads, scale=n.scale, backend=kernel_backend, **bias)
    elif n.kind == "sdsa":
        mod = A.SDSA(n.dim, n.num_heads, backend=kernel_backend)
    else:
        mod = A.DSFormerAttention(n.dim, n.num_heads, spike_mode=n.spike_mode,
                                  window_size=n.window_size, sparse_ratio=n.sparse_ratio,
                                  scale=n.scale, backend=kernel_backend,
                                  max_level=n.max_level, **bias)
    try:
        mod.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"node {n.name!r}: tensors do not fit {n.kind} attention: {e}") \
            from None
    return mod.eval()


def execute(graph: Graph, feeds: dict[str, torch.Tensor], *, numerics: str = "float",
            kernel_backend: str = "torch", time_steps: int | None = None,
            record_spikes: bool = False, cache: dict | None = None,
            stats: bool = True) -> RunResult:
    """Run ``graph`` (already verified) on ``feeds`` (Input name -> tensor, T-first when the
    input is temporal: [T, B, *shape], else [B, *shape]).

    Args:
        numerics: "float" or "fixed" (fixed: synapse layers compute integer W x, neurons are
            LoihiCubaLIF, delay-free timing as the module docstring says; inputs must be
            integer-valued).
        kernel_backend: backend for stc.kernels ops ("auto" | "triton" | "torch").
        time_steps: overrides every Repeat node's T.
        record_spikes: also return the spike trains of every spiking node.
        cache: a dict to keep rebuilt attention modules between calls (Executable passes one).
        stats: count spikes (a host sync per layer; off while capturing a CUDA graph).

    Raises:
        ValueError: a missing feed, a wrong feed shape, a node the numerics cannot run.
    """
    temporal = graph.temporal()
    vals: dict[str, torch.Tensor] = {}
    res = RunResult(outputs={})
    fixed = numerics == "fixed"
    for n in graph.nodes:
        ins = [vals[s] for s in n.inputs]
        x = ins[0] if ins else None
        tm = temporal[n.name]
        op = n.OP
        if op == "Input":
            if n.name not in feeds:
                raise ValueError(f"missing input {n.name!r}")
            y = feeds[n.name]
            lead = 2 if n.temporal else 1
            if tuple(y.shape[lead:]) != tuple(n.shape) or y.dim() != lead + len(n.shape):
                want = ("T, " if n.temporal else "") + "B, " + ", ".join(map(str, n.shape))
                raise ValueError(f"input {n.name!r} must have shape [{want}] (T-first), "
                                 f"got {tuple(y.shape)}")
            if fixed:
                if y.is_floating_point() and not torch.equal(y, y.round()):
                    raise ValueError(f"input {n.name!r}: fixed numerics need integer-valued "
                                     "inputs (spikes or spike counts)")
                y = y.to(torch.int64)
        elif op == "Repeat":
            T = time_steps or n.time_steps
            y = x.unsqueeze(0).expand(T, *x.shape).contiguous()
        elif op in ("Output",):
            y = x
        elif op == "Linear":
            w, b = graph.param(n, "weight"), graph.param(n, "bias")
            if fixed and not w.is_floating_point():
                y = F.linear(x.to(torch.int64), w.to(torch.int64),
                             None if b is None else b.to(torch.int64))
            elif fixed:  # a host readout (float weights) reading integer spike counts
                y = F.linear(x.to(torch.float32), w.to(torch.float32),
                             None if b is None else b.to(torch.float32))
            else:
                y = F.linear(x, w.to(x), None if b is None else b.to(x))
        elif op == "Conv2d":
            w, b = graph.param(n, "weight"), graph.param(n, "bias")

            def conv(z, w=w, b=b, n=n):
                if fixed:  # integer conv through float64 (exact below 2^53)
                    zz = F.conv2d(z.to(torch.float64), w.to(torch.float64),
                                  None if b is None else b.to(torch.float64),
                                  n.stride, n.padding, n.dilation, n.groups)
                    return zz.round().to(torch.int64)
                return F.conv2d(z, w.to(z), None if b is None else b.to(z), n.stride,
                                n.padding, n.dilation, n.groups)
            y = _merged(conv, x, tm)
        elif op == "Conv1d":
            if fixed:
                raise ValueError(f"node {n.name!r}: Conv1d has no fixed-point form")
            w, b = graph.param(n, "weight"), graph.param(n, "bias")
            y = _merged(lambda z, w=w, b=b, n=n: F.conv1d(
                z, w.to(z), None if b is None else b.to(z), n.stride, n.padding, n.dilation,
                n.groups), x, tm)
        elif op == "Delay":
            if not tm:
                raise ValueError(f"node {n.name!r} (Delay) needs a temporal input [T, B, ...]")
            d = graph.param(n, "steps").to(torch.int64).to(x.device).reshape(-1)
            flat = x.reshape(x.shape[0], x.shape[1], -1)
            d = d.expand(flat.shape[-1])
            y = torch.zeros_like(flat)
            for k in torch.unique(d).tolist():  # host read of a small parameter tensor
                m = d == k
                if k < x.shape[0]:
                    y[k:, :, m] = flat[:x.shape[0] - k, :, m]
            y = y.reshape(x.shape)
        elif op == "BatchNorm":
            if fixed:
                raise ValueError(f"node {n.name!r}: fold BatchNorm before fixed numerics")
            p = [graph.param(n, s) for s in ("running_mean", "running_var", "weight", "bias")]
            p = [None if t is None else t.to(x) for t in p]

            def bn(z, p=p, n=n):
                return F.batch_norm(z, p[0], p[1], p[2], p[3], False, 0.0, n.eps)
            nd = len(n.shape)
            if n.axis % nd == 0:
                y = _merged(bn, x, tm)
            else:  # channel on a later axis (tokens [N, D]): BatchNorm1d on [-1, C]
                moved = x.movedim(x.dim() - nd + n.axis % nd, -1)
                y = bn(moved.reshape(-1, moved.shape[-1])).reshape(moved.shape)
                y = y.movedim(-1, x.dim() - nd + n.axis % nd)
        elif op == "Pool2d":
            def pool(z, n=n):
                if n.kind == "max":
                    return F.max_pool2d(z, n.kernel_size, n.stride, n.padding)
                zf = z.to(torch.float64) if fixed else z
                if n.kind == "sum":
                    k = n.kernel_size[0] * n.kernel_size[1]
                    out = F.avg_pool2d(zf, n.kernel_size, n.stride, n.padding) * k
                    return out.round().to(z.dtype) if fixed else out
                if fixed:
                    raise ValueError(f"node {n.name!r}: average pooling has no fixed form; "
                                     "use sum pooling")
                return F.avg_pool2d(z, n.kernel_size, n.stride, n.padding)
            y = _merged(pool, x, tm)
        elif op == "Flatten":
            lead = 2 if tm else 1
            nd = len(graph.node(n.inputs[0]).shape)
            y = x.flatten(lead + n.start_dim % nd, lead + n.end_dim % nd)
        elif op == "Add":
            y = ins[0]
            for z in ins[1:]:
                y = y + z
        elif op == "Concat":  # inputs share the T axis (or all lack it), as for Add
            y = torch.cat(ins, dim=(2 if tm else 1) + n.axis % len(n.shape))
        elif op == "Scale":
            s = graph.param(n, "scale")
            y = x * n.factor if s is None else x * s.to(x) * n.factor
        elif op == "ToTokens":
            y = x.flatten(-2).transpose(-1, -2).contiguous()
        elif op == "SpikeAttention":
            if fixed:
                raise ValueError(f"node {n.name!r}: attention has no fixed-point form")
            if not tm:
                raise ValueError(f"node {n.name!r} needs temporal tokens [T, B, N, D]")
            key = (n.name, kernel_backend)
            if cache is None or key not in cache:
                mod = attention_module(graph, n, kernel_backend).to(x.device)
                if cache is not None:
                    cache[key] = mod
            else:
                mod = cache[key]
            y = mod(x.contiguous())
            if n.kind != "sdsa" and stats:
                cnt = int(y.sum().item())
                res.spike_counts[n.name] = cnt
                res.firing_rates[n.name] = cnt / max(1, y.numel())
        elif op == "AttentionCore":
            if not tm:
                raise ValueError(f"node {n.name!r} needs temporal tokens [T, B, N, D]")
            y = _attention_core(n, ins, fixed, kernel_backend)
        elif op == "TokenMean":
            y = x.to(torch.float32).mean(dim=-2) if fixed else x.mean(dim=-2)
        elif op == "TimeMean":
            y = x.to(torch.float32).mean(dim=0) if fixed else x.mean(dim=0)
        elif op in ("LIF", "IF", "CubaLIF", "LoihiCubaLIF"):
            if not tm:
                raise ValueError(f"node {n.name!r} ({op}) needs a temporal input [T, B, ...]; "
                                 "add a Repeat encoder")
            if fixed != (op == "LoihiCubaLIF"):
                raise ValueError(f"node {n.name!r} ({op}) cannot run in {numerics} numerics; "
                                 "quantise the graph (stc.passes.quantize) for fixed mode")
            if op == "LIF":
                from stc.kernels.lif import lif_multistep

                y, _ = lif_multistep(x.contiguous(), tau=n.tau, v_th=n.v_th, v_reset=n.v_reset,
                                     decay_input=n.decay_input, backend=kernel_backend)
            elif op == "IF":
                y = _if_loop(x, n.v_th, n.v_reset)
            elif op == "CubaLIF":
                y = _cuba_loop(graph, n, x)
            else:
                y = _loihi(graph, n, x, kernel_backend)
            if stats and not (op == "CubaLIF" and n.output == "v"):
                cnt = int(y.sum().item())
                res.spike_counts[n.name] = cnt
                res.firing_rates[n.name] = cnt / max(1, y.numel())
                if record_spikes:
                    res.spike_trains[n.name] = y
        else:
            raise ValueError(f"node {n.name!r}: op {op} is not supported by the runtime")
        vals[n.name] = y
        if op == "Output":
            res.outputs[n.name] = y
    return res
