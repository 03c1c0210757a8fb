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

from .fixed_lif import cuba_lif_run
from .fixed_plan import NodePlan, plan_fixed, work_per_sample_step


@dataclass
class RunResult:
    """Outputs (name -> tensor, T-first where temporal) and per-layer spike statistics:
    ``spike_counts[name]`` total spikes of a spiking node, ``firing_rates[name]`` spikes per
    neuron per timestep, and ``spike_trains`` (name -> [T, B, ...]) when requested.

    The counts stay on the device (``device_counts``: name -> (spikes per sample [B]
    float64, neurons x timesteps per sample)) until ``spike_counts`` or ``firing_rates`` is
    first read; that read moves all of them to the host in one transfer (``read_stats``), so
    a forward makes no host sync per layer.
    """

    outputs: dict[str, torch.Tensor]
    spike_trains: dict[str, torch.Tensor] = field(default_factory=dict)
    device_counts: dict[str, tuple[torch.Tensor, int]] = field(default_factory=dict)
    _host: tuple[dict[str, int], dict[str, float]] | None = field(default=None, repr=False)

    def stacked_counts(self) -> torch.Tensor | None:
        """All layers' spike totals as one float64 device tensor [layers] (None if none)."""
        if not self.device_counts:
            return None
        return torch.stack([c.sum() for c, _ in self.device_counts.values()])

    def read_stats(self, counts: list[float] | None = None) -> None:
        """Fill the host statistics from ``device_counts`` in one read, or from ``counts``
        (``stacked_counts()`` already read by the caller)."""
        names = list(self.device_counts)
        if counts is None:
            st = self.stacked_counts()
            counts = [] if st is None else st.tolist()
        if len(counts) != len(names):
            raise ValueError(f"read_stats: {len(counts)} counts for {len(names)} layers")
        spikes = {n: int(round(c)) for n, c in zip(names, counts, strict=True)}
        rates = {n: spikes[n] / max(1, self.device_counts[n][1] * self.device_counts[n][0]
                                    .numel()) for n in names}
        self._host = (spikes, rates)

    @property
    def spike_counts(self) -> dict[str, int]:
        """Total spikes per spiking node (read from the device on first access)."""
        if self._host is None:
            self.read_stats()
        return self._host[0]

    @property
    def firing_rates(self) -> dict[str, float]:
        """Spikes per neuron per timestep per spiking node (read on first access)."""
        if self._host is None:
            self.read_stats()
        return self._host[1]


def _feed(n: Node, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
    """The feed of Input node ``n``, T-first, with its shape checked.

    Raises:
        ValueError: the feed is missing or its shape is not [T,] B, *n.shape.
    """
    if n.name not in feeds:
        raise ValueError(f"missing input {n.name!r}")
    y = feeds[n.name]
    lead = 2 if n.temporal else 1
    if tuple(y.shape[lead:]) != tuple(n.shape) or y.dim() != lead + len(n.shape):
        want = ("T, " if n.temporal else "") + "B, " + ", ".join(map(str, n.shape))
        raise ValueError(f"input {n.name!r} must have shape [{want}] (T-first), "
                         f"got {tuple(y.shape)}")
    return y


def _per_sample_counts(y: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Spikes per sample of a [T, B, ...] train (float64 [B], on y's device; no host read)
    and the neurons x timesteps per sample."""
    B = y.shape[1]
    return y.reshape(y.shape[0], B, -1).sum(dim=(0, 2), dtype=torch.float64), y.numel() // B


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


def _loihi(graph: Graph, n: Node, x: torch.Tensor, kernel_backend: str,
           plan: dict[str, NodePlan]) -> torch.Tensor:
    """Integer CUBA-LIF (Lava registers: du = i_decay - 1) on the exact-integer synaptic input
    x [T, ...]: the tight recurrence of stc.runtime.fixed_lif, or the Triton kernel of
    stc.kernels.cuba_fixed when ``kernel_backend`` is "triton" (or "auto" on CUDA)."""
    if not 1 <= n.i_decay <= 4096:
        raise ValueError(f"node {n.name!r}: i_decay must be in 1..4096, got {n.i_decay}")
    p = plan[n.name]
    bias = None if p.bias is None else p.bias.to(x.device)
    if kernel_backend == "triton" or (kernel_backend == "auto" and x.device.type == "cuda"):
        from stc.kernels.cuba_fixed import cuba_lif_fixed

        s, _, _ = cuba_lif_fixed(x.to(torch.int32).contiguous(), n.i_decay - 1, n.v_decay,
                                 n.v_th_mant, 0 if bias is None else bias.to(torch.int32),
                                 int(n.bias_exp), backend=kernel_backend)
        return s.to(torch.float32)
    return cuba_lif_run(x, i_decay=int(n.i_decay), v_decay=int(n.v_decay),
                        v_th_mant=int(n.v_th_mant), bias=bias, bias_exp=int(n.bias_exp),
                        a_bound=plan[n.inputs[0]].bound, bias_bound=p.bias_bound)


def _attention_core(n: Node, ins: list[torch.Tensor], fixed: bool,
                    kernel_backend: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """AttentionCore on q, k, v [T, B, N, D]: float O * scale through stc.kernels.attention
    (the op stc.nn.attention's modules call), or fixed integer O * gain computed in ``dtype``
    (float32 or float64, chosen by stc.runtime.fixed_plan so that every sum is exact)."""
    from stc.kernels.attention import dsformer, dsformer_reference, ssa
    from stc.nn.attention import merge_heads, split_heads

    h = int(n.num_heads)
    if fixed:
        q, k, v = (split_heads(z.to(dtype), h) for z in ins)
        o = dsformer_reference(q, k, v, int(n.window_size), float(n.sparse_ratio), 1.0)
        return merge_heads(o) * int(n.gain)
    q, k, v = (split_heads(z, h) for z in ins)
    if n.window_size == 1 and n.sparse_ratio == 1.0:
        o = ssa(q, k, v, scale=n.scale, backend=kernel_backend, max_value=1.0)
    else:  # q, k, v are LIF spikes (graded attention is not lowered): max_value 1
        o = dsformer(q, k, v, window_size=n.window_size, sparse_ratio=n.sparse_ratio,
                     scale=n.scale, backend=kernel_backend, max_value=1.0)
    return merge_heads(o)


def _sdsa_core(n: Node, ins: list[torch.Tensor], fixed: bool,
               kernel_backend: str) -> torch.Tensor:
    """SDSACore on q, k, v spikes [T, B, N, D]: float through stc.kernels.attention.sdsa (the
    op stc.nn.attention.SDSA calls), fixed as q * (sum_N(k * v) >= 1) in float32 (exact:
    the sum is at most N; equal to the float form for binary spikes and v_th 0.5)."""
    if fixed:
        q, k, v = (z.to(torch.float32) for z in ins)
        return q * ((k * v).sum(dim=-2, keepdim=True) >= 1).to(torch.float32)
    from stc.kernels.attention import sdsa
    from stc.nn.attention import merge_heads, split_heads

    h = int(n.num_heads)
    q, k, v = (split_heads(z.contiguous(), h) for z in ins)
    return merge_heads(sdsa(q, k, v, v_th=float(n.v_th), backend=kernel_backend))


def _static(x: torch.Tensor, tm: bool) -> torch.Tensor | None:
    """x[0] when x [T, ...] is the same every step (a Repeat's stride-0 expansion), else None."""
    if tm and x.dim() > 0 and x.shape[0] > 1 and x.stride(0) == 0:
        return x[0]
    return None


def _per_step(fn, x: torch.Tensor, tm: bool) -> torch.Tensor:
    """Apply a stateless per-step op: once on x[0] when x repeats along T (the result is
    expanded back without a copy), else on T*B merged."""
    s = _static(x, tm)
    if s is not None:
        y = fn(s)
        return y.unsqueeze(0).expand(x.shape[0], *y.shape)
    return _merged(fn, x, tm)


def _conv_exact(z: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, n: Node,
                unfold: bool | None = None) -> torch.Tensor:
    """conv2d of exact-integer floats z [B, C, H, W], w [O, C/groups, kH, kW]. On CPU
    F.conv2d (direct / im2col GEMM); elsewhere (or ``unfold=True``) unfold + matmul, because
    cuDNN may pick Winograd or FFT algorithms, which round."""
    if not (z.device.type != "cpu" if unfold is None else unfold):
        return F.conv2d(z, w, b, n.stride, n.padding, n.dilation, n.groups)
    Bn, C, H, W = z.shape
    O, Cg, kh, kw = w.shape
    g = int(n.groups)
    cols = F.unfold(z, (kh, kw), dilation=n.dilation, padding=n.padding, stride=n.stride)
    L = cols.shape[-1]
    Ho = (H + 2 * n.padding[0] - n.dilation[0] * (kh - 1) - 1) // n.stride[0] + 1
    Wo = (W + 2 * n.padding[1] - n.dilation[1] * (kw - 1) - 1) // n.stride[1] + 1
    y = torch.matmul(w.reshape(g, O // g, Cg * kh * kw), cols.reshape(Bn, g, Cg * kh * kw, L))
    y = y.reshape(Bn, O, Ho, Wo)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


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
            stats: bool = True, input_bounds: dict[str, float] | None = None) -> RunResult:
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
        stats: count spikes per spiking node, on the device (read lazily, see RunResult).
        input_bounds: fixed numerics: Input name -> max |x| the feeds respect (default
            ``graph.metadata["input_bounds"]``, else from the Input's datatype;
            stc.runtime.fixed_plan). It decides the float precision of exact integer sums.

    Raises:
        ValueError: a missing feed, a wrong feed shape, a node the numerics cannot run, a
            fixed feed that is not integer-valued or exceeds its bound.
    """
    if numerics == "fixed":
        return _execute_fixed(graph, feeds, kernel_backend=kernel_backend,
                              time_steps=time_steps, record_spikes=record_spikes, cache=cache,
                              stats=stats, input_bounds=input_bounds)
    temporal = graph.temporal()
    vals: dict[str, torch.Tensor] = {}
    res = RunResult(outputs={})
    for n in graph.nodes:
        ins = [vals[s] for s in n.inputs]
        x = ins[0] if ins else None
        tm = temporal[n.name]
        op = n.OP
        if op == "Input":
            y = _feed(n, feeds)
        elif op == "Repeat":
            T = time_steps or n.time_steps
            y = x.unsqueeze(0).expand(T, *x.shape).contiguous()
        elif op in ("Output",):
            y = x
        elif op == "Linear":
            w, b = graph.param(n, "weight"), graph.param(n, "bias")
            y = F.linear(x, w.to(x), None if b is None else b.to(x))
        elif op == "Conv2d":
            w, b = graph.param(n, "weight"), graph.param(n, "bias")

            def conv(z, w=w, b=b, n=n):
                return F.conv2d(z, w.to(z), None if b is None else b.to(z), n.stride,
                                n.padding, n.dilation, n.groups)
            y = _merged(conv, x, tm)
        elif op == "Conv1d":  # float numerics only (the fixed path refuses it by name)
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
                if n.kind == "sum":
                    k = n.kernel_size[0] * n.kernel_size[1]
                    return F.avg_pool2d(z, n.kernel_size, n.stride, n.padding) * k
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
                res.device_counts[n.name] = _per_sample_counts(y)
        elif op == "AttentionCore":
            if not tm:
                raise ValueError(f"node {n.name!r} needs temporal tokens [T, B, N, D]")
            y = _attention_core(n, ins, False, kernel_backend)
        elif op == "SDSACore":
            if not tm:
                raise ValueError(f"node {n.name!r} needs temporal tokens [T, B, N, D]")
            y = _sdsa_core(n, ins, False, kernel_backend)
            if stats:
                res.device_counts[n.name] = _per_sample_counts(y)
            if record_spikes:
                res.spike_trains[n.name] = y
        elif op == "TokenMean":
            y = x.mean(dim=-2)
        elif op == "TimeMean":
            y = x.mean(dim=0)
        elif op in ("LIF", "IF", "CubaLIF", "LoihiCubaLIF"):
            if not tm:
                raise ValueError(f"node {n.name!r} ({op}) needs a temporal input [T, B, ...]; "
                                 "add a Repeat encoder")
            if op == "LoihiCubaLIF":
                raise ValueError(f"node {n.name!r} ({op}) cannot run in {numerics} numerics; "
                                 "run a quantised graph with numerics='fixed'")
            if op == "LIF":
                from stc.kernels.lif import lif_multistep

                y, _ = lif_multistep(x.contiguous(), tau=n.tau, v_th=n.v_th, v_reset=n.v_reset,
                                     decay_input=n.decay_input, backend=kernel_backend)
            elif op == "IF":
                y = _if_loop(x, n.v_th, n.v_reset)
            elif op == "CubaLIF":
                y = _cuba_loop(graph, n, x)
            if stats and not (op == "CubaLIF" and n.output == "v"):
                res.device_counts[n.name] = _per_sample_counts(y)
            if record_spikes and not (op == "CubaLIF" and n.output == "v"):
                res.spike_trains[n.name] = y
        else:
            raise ValueError(f"node {n.name!r}: op {op} is not supported by the runtime")
        vals[n.name] = y
        if op == "Output":
            res.outputs[n.name] = y
    return res


def fixed_plan_for(graph: Graph, cache: dict | None = None,
                   input_bounds: dict[str, float] | None = None) -> dict[str, NodePlan]:
    """The load-time precision plan of a fixed graph (stc.runtime.fixed_plan), kept in
    ``cache`` (the Executable's) so that it is computed once per graph and input bounds."""
    bounds = input_bounds if input_bounds is not None else graph.metadata.get("input_bounds")
    key = ("fixed_plan", tuple(sorted((bounds or {}).items())))
    if cache is not None and key in cache:
        return cache[key]
    plan = plan_fixed(graph, bounds)
    if cache is not None:
        cache[key] = plan
    return plan


# Below this many multiply-accumulates per call, a CPU fixed run uses one intra-op thread:
# its ops are too small to gain from threads, and on a loaded machine OpenMP's barriers make
# them 10-100x slower (benchmarks/results/fixed_runtime_cpu.md).
SINGLE_THREAD_MACS = 1 << 26


def _execute_fixed(graph: Graph, feeds: dict[str, torch.Tensor], **kw) -> RunResult:
    """Fixed numerics (see :func:`execute`): integer values are carried in float32/float64
    (exact: stc.runtime.fixed_plan) or as float32 0/1 spikes; no integer matmul, convolution
    or pooling is called, so the same code runs on CPU and CUDA. Layer-major: each node
    processes all T steps at once, a Repeat's input once (stride-0 expansion). Small CPU runs
    use one intra-op thread (``torch.set_num_threads`` is per calling thread with OpenMP, so
    other threads keep their setting; it is restored afterwards)."""
    plan = fixed_plan_for(graph, kw["cache"], kw["input_bounds"])
    x0 = next(iter(feeds.values()), None)
    threads = torch.get_num_threads()
    if x0 is not None and x0.device.type == "cpu" and threads > 1:
        inp = graph.inputs()[0]
        batch = x0.shape[1] if inp.temporal else x0.shape[0]
        T = x0.shape[0] if inp.temporal else (kw["time_steps"] or next(
            (n.time_steps for n in graph.nodes if n.OP == "Repeat"), 1))
        if batch * T * work_per_sample_step(plan) < SINGLE_THREAD_MACS:
            torch.set_num_threads(1)
            try:
                return _run_fixed(graph, feeds, plan, **kw)
            finally:
                torch.set_num_threads(threads)
    return _run_fixed(graph, feeds, plan, **kw)


def _run_fixed(graph: Graph, feeds: dict[str, torch.Tensor], plan: dict[str, NodePlan], *,
               kernel_backend: str, time_steps: int | None, record_spikes: bool,
               cache: dict | None, stats: bool,
               input_bounds: dict[str, float] | None) -> RunResult:
    temporal = graph.temporal()
    vals: dict[str, torch.Tensor] = {}
    res = RunResult(outputs={})
    for n in graph.nodes:
        ins = [vals[s] for s in n.inputs]
        x = ins[0] if ins else None
        tm = temporal[n.name]
        op = n.OP
        p = plan[n.name]
        if op == "Input":
            y = _feed(n, feeds)
            if y.is_floating_point():
                bad = ((y != y.round()) | (y.abs() > p.bound)).any()
            else:
                bad = (y.abs() > p.bound).any() if p.bound < 2 ** 62 else None
            if bad is not None and bool(bad):
                raise ValueError(f"input {n.name!r}: fixed numerics need integer-valued "
                                 f"inputs (spikes or spike counts) with |x| <= {p.bound:g}")
            y = y.to(p.dtype)
        elif op == "Repeat":
            T = time_steps or n.time_steps
            y = x.unsqueeze(0).expand(T, *x.shape)
        elif op == "Output":
            y = x.round().to(torch.int64) if p.dtype is not None else x
        elif op == "Linear":
            if p.dtype is None:  # a host readout (float weights) reading integer spike counts
                w, b = graph.param(n, "weight"), graph.param(n, "bias")
                y = F.linear(x.to(torch.float32), w.to(torch.float32),
                             None if b is None else b.to(torch.float32))
            else:
                w, b = p.weight.to(x.device), None if p.bias is None else p.bias.to(x.device)
                y = _per_step(lambda z, w=w, b=b, dt=p.dtype: F.linear(z.to(dt), w, b), x, tm)
        elif op == "Conv2d":
            if p.dtype is None:
                raise ValueError(f"node {n.name!r}: fixed convolutions need integer weights "
                                 "reading integer values")
            w, b = p.weight.to(x.device), None if p.bias is None else p.bias.to(x.device)
            y = _per_step(lambda z, w=w, b=b, n=n, dt=p.dtype: _conv_exact(z.to(dt), w, b, n),
                          x, tm)
        elif op == "BatchNorm":
            raise ValueError(f"node {n.name!r}: fold BatchNorm before fixed numerics")
        elif op == "Pool2d":
            if n.kind == "avg":
                raise ValueError(f"node {n.name!r}: average pooling has no fixed form; "
                                 "use sum pooling")

            def pool(z, n=n, dt=p.dtype or torch.float32):
                z = z.to(dt)
                if n.kind == "max":
                    return F.max_pool2d(z, n.kernel_size, n.stride, n.padding)
                return F.avg_pool2d(z, n.kernel_size, n.stride, n.padding,
                                    divisor_override=1)  # the exact window sum
            y = _per_step(pool, x, tm)
        elif op == "Flatten":
            lead = 2 if tm else 1
            nd = len(graph.node(n.inputs[0]).shape)
            y = x.flatten(lead + n.start_dim % nd, lead + n.end_dim % nd)
        elif op == "Add":
            dt = p.dtype or torch.float32
            y = ins[0].to(dt)
            for z in ins[1:]:
                y = y + z.to(dt)
        elif op == "Scale":
            s = graph.param(n, "scale")
            y = x.to(torch.float32) * n.factor if s is None else \
                x.to(torch.float32) * s.to(x.device, torch.float32) * n.factor
        elif op == "ToTokens":
            y = x.flatten(-2).transpose(-1, -2)
        elif op == "SpikeAttention":
            raise ValueError(f"node {n.name!r}: attention has no fixed-point form")
        elif op == "AttentionCore":
            if not tm:
                raise ValueError(f"node {n.name!r} needs temporal tokens [T, B, N, D]")
            y = _attention_core(n, [z.contiguous() for z in ins], True, kernel_backend,
                                p.dtype)
        elif op == "SDSACore":
            if not tm:
                raise ValueError(f"node {n.name!r} needs temporal tokens [T, B, N, D]")
            y = _sdsa_core(n, ins, True, kernel_backend)
            if stats:
                res.device_counts[n.name] = _per_sample_counts(y)
            if record_spikes:
                res.spike_trains[n.name] = y.to(torch.int64)
        elif op == "TokenMean":
            y = x.to(torch.float32).mean(dim=-2)
        elif op == "TimeMean":
            y = x.to(torch.float32).mean(dim=0)
        elif op in ("LIF", "IF", "CubaLIF", "LoihiCubaLIF"):
            if not tm:
                raise ValueError(f"node {n.name!r} ({op}) needs a temporal input [T, B, ...]; "
                                 "add a Repeat encoder")
            if op == "LIF" and plan[n.inputs[0]].dtype is None:  # a float LIF on the host
                from stc.kernels.lif import lif_multistep

                y, _ = lif_multistep(x.to(torch.float32).contiguous(), tau=n.tau, v_th=n.v_th,
                                     v_reset=n.v_reset, decay_input=n.decay_input,
                                     backend=kernel_backend)
            elif op != "LoihiCubaLIF":
                raise ValueError(f"node {n.name!r} ({op}) cannot run in fixed numerics; "
                                 "quantise the graph (stc.passes.quantize) for fixed mode")
            else:
                y = _loihi(graph, n, x, kernel_backend, plan)
            if stats:
                res.device_counts[n.name] = _per_sample_counts(y)
            if record_spikes:
                res.spike_trains[n.name] = y.to(torch.int64)
        else:
            raise ValueError(f"node {n.name!r}: op {op} is not supported by the runtime")
        vals[n.name] = y
        if op == "Output":
            res.outputs[n.name] = y
    return res
