"""Stateful single-step execution of a graph: state in, state out.

``Stepper(graph, numerics=...)`` runs a verified IR graph a few timesteps at a time and keeps
everything that lives between timesteps in a ``StreamState``: every neuron's membrane state
(LIF/IF ``v``; CubaLIF ``i, v``; LoihiCubaLIF ``u, v`` in Loihi's integer registers), the
neurons inside float SpikeAttention modules, and the inputs a ``TimeMean`` has seen. Feeding
T steps one at a time gives exactly the outputs of one ``stc.runtime.execute`` call over the
T steps (tests/edge/test_stream.py checks it bit for bit), because every op is applied with
the same arithmetic, per step, and TimeMean averages the same stacked tensor.

Shapes: a static input (graph with a ``Repeat`` encoder) is ``[B, *shape]`` and is presented
for ``steps`` timesteps; a temporal input is ``[k, B, *shape]`` (k steps, T-first). Temporal
outputs come back ``[k, B, *shape]`` (the steps of this call); outputs after ``TimeMean`` are
the mean over all steps of the stream so far, ``[B, *shape]``.

Used by the server's sequence batcher (stc.server.sequence) and directly by Python users who
run a network online::

    st = Stepper(graph)
    state = None
    for frame in camera:                      # frame: [1, C, H, W]
        out, state = st.step({"input": frame}, state)

Fixed numerics follow the delay-free timing of stc.runtime.interpreter (every layer sees the
previous layer's spikes of the same step; neurons start at rest).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from stc.ir import Graph, Node
from stc.runtime.interpreter import _merged

_STATE: contextvars.ContextVar[dict] = contextvars.ContextVar("stc_stream_state")
NEURONS = ("LIF", "IF", "CubaLIF", "LoihiCubaLIF")


@dataclass
class StreamState:
    """What one stream carries between steps (treat as opaque).

    Attributes:
        steps: timesteps run so far. batch: B fixed at the first step.
        neurons: node name -> state tensors ([B, *shape] each).
        modules: per-attention-node dict of its inner neurons' membrane potentials.
        history: TimeMean node name -> list of its inputs [k, B, *shape].
    """

    steps: int = 0
    batch: int | None = None
    neurons: dict[str, tuple] = field(default_factory=dict)
    modules: dict[str, dict] = field(default_factory=dict)
    history: dict[str, list] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Bytes held by the state's tensors."""
        total = 0
        for ts in self.neurons.values():
            total += sum(t.numel() * t.element_size() for t in ts if t is not None)
        for d in self.modules.values():
            total += sum(t.numel() * t.element_size() for t in d.values())
        for h in self.history.values():
            total += sum(t.numel() * t.element_size() for t in h)
        return total


class _SteppedNeuron(torch.nn.Module):
    """Replaces an stc.nn LIF / IF / GradedLIF inside an attention module: continues from the
    membrane potential kept in the current stream's state (a context variable)."""

    def __init__(self, inner: torch.nn.Module, key: str) -> None:
        super().__init__()
        self.inner = inner
        self.key = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from stc.kernels.lif import lif_multistep
        from stc.nn.attention import GradedLIF

        st = _STATE.get()
        v0 = st.get(self.key)
        m = self.inner
        if isinstance(m, GradedLIF):
            v = torch.zeros_like(x[0]) if v0 is None else v0
            out = []
            for t in range(x.shape[0]):
                h = v + (x[t] - v) / m.tau
                s = torch.round(h.clamp(0.0, float(m.max_level)))
                v = h - s
                out.append(s)
            st[self.key] = v
            return torch.stack(out)
        tau = getattr(m, "tau", float("inf"))
        decay_input = getattr(m, "decay_input", False)
        y, v = lif_multistep(x.contiguous(), tau=tau, v_th=m.v_th, v_reset=m.v_reset,
                             decay_input=decay_input, detach_reset=m.detach_reset,
                             surrogate=m.surrogate, alpha=m.alpha, v_init=v0,
                             backend=m.backend)
        st[self.key] = v
        return y


def _stepped_module(mod: torch.nn.Module) -> torch.nn.Module:
    from stc.nn.attention import GradedLIF
    from stc.nn.neurons import IF, LIF

    for name, child in list(mod.named_modules()):
        for cname, c in list(child.named_children()):
            if isinstance(c, (LIF, IF, GradedLIF)):
                setattr(child, cname, _SteppedNeuron(c, f"{name}.{cname}".lstrip(".")))
    return mod


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """F.linear, except that a single float row is computed as part of two rows: BLAS takes
    a matrix-vector path for one row that rounds differently from the matrix-matrix path a
    multi-step call uses, which would break bit-exactness of a one-step, batch-1 stream."""
    rows = x.numel() // max(1, x.shape[-1])
    if rows != 1 or not x.is_floating_point():
        return F.linear(x, w, b)
    flat = x.reshape(1, x.shape[-1])
    y = F.linear(torch.cat([flat, torch.zeros_like(flat)]), w, b)[:1]
    return y.reshape(*x.shape[:-1], y.shape[-1])


class Stepper:
    """Run ``graph`` a few timesteps at a time (module docstring).

    Args:
        graph: a verified IR graph (float, or quantised for numerics="fixed"); not modified.
        numerics: "float" | "fixed".
        kernel_backend: stc.kernels backend ("auto" | "triton" | "torch").
        device: torch device of the graph's tensors and of the state.

    Raises:
        ValueError: unknown numerics, or a node whose op cannot run in these numerics.
    """

    def __init__(self, graph: Graph, *, numerics: str = "float", kernel_backend: str = "torch",
                 device: str | torch.device = "cpu") -> None:
        if numerics not in ("float", "fixed"):
            raise ValueError(f"numerics must be 'float' or 'fixed', got {numerics!r}")
        self.graph = graph
        self.numerics = numerics
        self.kernel_backend = kernel_backend
        self.device = torch.device(device)
        self.temporal = graph.temporal()
        self._modules: dict[str, torch.nn.Module] = {}
        for n in graph.nodes:
            if n.OP in NEURONS and (numerics == "fixed") != (n.OP == "LoihiCubaLIF"):
                raise ValueError(f"node {n.name!r} ({n.OP}) cannot run in {numerics} numerics")
            if n.OP == "SpikeAttention":
                if numerics == "fixed":
                    raise ValueError(f"node {n.name!r}: attention has no fixed-point form")
                from stc.runtime.interpreter import attention_module

                self._modules[n.name] = _stepped_module(
                    attention_module(graph, n, kernel_backend).to(self.device))

    def initial_state(self) -> StreamState:
        """An empty state (every neuron at rest, no steps yet)."""
        return StreamState()

    def _param(self, n: Node, slot: str):
        return self.graph.param(n, slot)

    @torch.no_grad()
    def step(self, feeds: dict[str, torch.Tensor], state: StreamState | None = None, *,
             steps: int = 1) -> tuple[dict[str, torch.Tensor], StreamState]:
        """Advance the stream by ``steps`` timesteps (static inputs) or by the k steps of the
        temporal inputs; returns (outputs, new state). ``state`` is not modified.

        Args:
            feeds: Input name -> tensor: static ``[B, *shape]``, temporal ``[k, B, *shape]``.
            state: from the previous call, or None to start a stream.
            steps: timesteps to present static inputs (ignored when an input is temporal).

        Raises:
            ValueError: missing input, wrong shape, a batch size that differs from the one the
                stream started with, non-integer input in fixed numerics, steps < 1.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        old = state or StreamState()
        st = StreamState(old.steps, old.batch, dict(old.neurons),
                         {k: dict(v) for k, v in old.modules.items()},
                         {k: list(v) for k, v in old.history.items()})
        fixed = self.numerics == "fixed"
        vals: dict[str, torch.Tensor] = {}
        outputs: dict[str, torch.Tensor] = {}
        k = steps
        for n in self.graph.nodes:
            if n.OP == "Input" and n.temporal and n.name in feeds:
                k = int(feeds[n.name].shape[0])
        for n in self.graph.nodes:
            ins = [vals[s] for s in n.inputs]
            x = ins[0] if ins else None
            tm = self.temporal[n.name]
            op = n.OP
            if op == "Input":
                y = self._input(n, feeds, st, fixed)
            elif op == "Repeat":
                y = x.unsqueeze(0).expand(k, *x.shape).contiguous()
            elif op == "Output":
                y = x
                outputs[n.name] = y
            elif op == "TimeMean":
                st.history.setdefault(n.name, []).append(x)
                z = torch.cat(st.history[n.name])
                y = z.to(torch.float32).mean(dim=0) if fixed else z.mean(dim=0)
            elif op in NEURONS:
                y = self._neuron(n, x, st)
            elif op == "SpikeAttention":
                mod = self._modules[n.name]
                token = _STATE.set(st.modules.setdefault(n.name, {}))
                try:
                    y = mod(x.contiguous())
                finally:
                    _STATE.reset(token)
            else:
                y = self._stateless(n, ins, x, tm, fixed)
            vals[n.name] = y
        st.steps += k
        return outputs, st

    def _input(self, n: Node, feeds: dict, st: StreamState, fixed: bool) -> torch.Tensor:
        if n.name not in feeds:
            raise ValueError(f"missing input {n.name!r}")
        y = torch.as_tensor(feeds[n.name]).to(self.device)
        lead = 2 if n.temporal else 1
        if y.dim() != lead + len(n.shape) or tuple(y.shape[lead:]) != tuple(n.shape):
            want = ("k, " if n.temporal else "") + "B, " + ", ".join(map(str, n.shape))
            raise ValueError(f"input {n.name!r} must have shape [{want}], got "
                             f"{tuple(y.shape)}")
        b = int(y.shape[lead - 1])
        if st.batch is None:
            st.batch = b
        elif b != st.batch:
            raise ValueError(f"input {n.name!r} has batch {b}, but the stream started with "
                             f"batch {st.batch}")
        if not y.is_floating_point():
            y = y.to(torch.float32)
        if fixed:
            if not torch.equal(y, y.round()):
                raise ValueError(f"input {n.name!r}: fixed numerics need integer-valued "
                                 "inputs (spikes or spike counts)")
            y = y.to(torch.int64)
        else:
            y = y.to(torch.float32)
        return y

    def _neuron(self, n: Node, x: torch.Tensor, st: StreamState) -> torch.Tensor:
        prev = st.neurons.get(n.name)
        op = n.OP
        if op == "LIF":
            from stc.kernels.lif import lif_multistep

            y, v = lif_multistep(x.contiguous(), tau=n.tau, v_th=n.v_th, v_reset=n.v_reset,
                                 decay_input=n.decay_input,
                                 v_init=None if prev is None else prev[0],
                                 backend=self.kernel_backend)
            st.neurons[n.name] = (v,)
            return y
        if op == "IF":
            v = (torch.zeros_like(x[0]) + (0.0 if n.v_reset is None else n.v_reset)
                 if prev is None else prev[0])
            out = []
            for t in range(x.shape[0]):
                h = v + x[t]
                s = (h >= n.v_th).to(x.dtype)
                v = h - n.v_th * s if n.v_reset is None else h * (1 - s) + n.v_reset * s
                out.append(s)
            st.neurons[n.name] = (v,)
            return torch.stack(out)
        if op == "CubaLIF":
            return self._cuba(n, x, st, prev)
        from stc.kernels.cuba_fixed import cuba_lif_fixed

        b = self._param(n, "bias")
        bias = 0 if b is None else b.to(torch.int32).to(x.device).reshape(n.shape)
        u0, v0 = (None, None) if prev is None else prev
        s, u, v = cuba_lif_fixed(x.to(torch.int32).contiguous(), n.i_decay - 1, n.v_decay,
                                 n.v_th_mant, bias, int(n.bias_exp), u_init=u0, v_init=v0,
                                 backend=self.kernel_backend)
        st.neurons[n.name] = (u, v)
        return s.to(torch.int64)

    def _cuba(self, n: Node, x: torch.Tensor, st: StreamState, prev) -> torch.Tensor:
        def p(slot: str) -> torch.Tensor:
            t = self._param(n, slot)
            return t.to(x.dtype).to(x.device).reshape(-1).reshape(
                () if t.numel() == 1 else n.shape)

        v_decay, v_gain, v_leak, v_th, v_reset = (p(s) for s in
                                                 ("v_decay", "v_gain", "v_leak", "v_th",
                                                  "v_reset"))
        i, v = (torch.zeros_like(x[0]), torch.zeros_like(x[0])) if prev is None else prev
        out = []
        for t in range(x.shape[0]):
            i = i * (1 - p("i_decay")) + p("i_gain") * x[t] if n.has_synapse else x[t]
            v = v * (1 - v_decay) + v_decay * v_leak + v_gain * i
            if n.output == "v":
                out.append(v)
                continue
            s = v >= v_th if n.fire_ge else v > v_th
            v = torch.where(s, v_reset.expand_as(v), v)
            out.append(s.to(x.dtype))
        st.neurons[n.name] = (i, v)
        return torch.stack(out)

    def _stateless(self, n: Node, ins: list, x: torch.Tensor, tm: bool,
                   fixed: bool) -> torch.Tensor:
        """Ops without state between steps: the same arithmetic as stc.runtime.interpreter."""
        op = n.OP
        g = self.graph
        if op == "Linear":
            w, b = g.param(n, "weight"), g.param(n, "bias")
            if fixed and not w.is_floating_point():
                return F.linear(x.to(torch.int64), w.to(torch.int64),
                                None if b is None else b.to(torch.int64))
            if fixed:
                return _linear(x.to(torch.float32), w.to(torch.float32),
                               None if b is None else b.to(torch.float32))
            return _linear(x, w.to(x), None if b is None else b.to(x))
        if op == "Conv2d":
            w, b = g.param(n, "weight"), g.param(n, "bias")

            def conv(z):
                if fixed:
                    zz = F.conv2d(z.to(torch.float64), w.to(torch.float64),
                                  None if b is None else b.to(torch.float64),
                                  n.stride, n.padding, n.dilation, n.groups)
                    return zz.round().to(torch.int64)
                return F.conv2d(z, w.to(z), None if b is None else b.to(z), n.stride,
                                n.padding, n.dilation, n.groups)
            return _merged(conv, x, tm)
        if op == "BatchNorm":
            if fixed:
                raise ValueError(f"node {n.name!r}: fold BatchNorm before fixed numerics")
            p = [g.param(n, s) for s in ("running_mean", "running_var", "weight", "bias")]
            p = [None if t is None else t.to(x) for t in p]

            def bn(z):
                return F.batch_norm(z, p[0], p[1], p[2], p[3], False, 0.0, n.eps)
            nd = len(n.shape)
            if n.axis % nd == 0:
                return _merged(bn, x, tm)
            moved = x.movedim(x.dim() - nd + n.axis % nd, -1)
            y = bn(moved.reshape(-1, moved.shape[-1])).reshape(moved.shape)
            return y.movedim(-1, x.dim() - nd + n.axis % nd)
        if op == "Pool2d":
            def pool(z):
                if n.kind == "max":
                    return F.max_pool2d(z, n.kernel_size, n.stride, n.padding)
                zf = z.to(torch.float64) if fixed else z
                if n.kind == "sum":
                    kk = n.kernel_size[0] * n.kernel_size[1]
                    out = F.avg_pool2d(zf, n.kernel_size, n.stride, n.padding) * kk
                    return out.round().to(z.dtype) if fixed else out
                if fixed:
                    raise ValueError(f"node {n.name!r}: average pooling has no fixed form")
                return F.avg_pool2d(z, n.kernel_size, n.stride, n.padding)
            return _merged(pool, x, tm)
        if op == "Flatten":
            lead = 2 if tm else 1
            nd = len(g.node(n.inputs[0]).shape)
            return x.flatten(lead + n.start_dim % nd, lead + n.end_dim % nd)
        if op == "Add":
            y = ins[0]
            for z in ins[1:]:
                y = y + z
            return y
        if op == "Scale":
            s = g.param(n, "scale")
            return x * n.factor if s is None else x * s.to(x) * n.factor
        if op == "ToTokens":
            return x.flatten(-2).transpose(-1, -2).contiguous()
        if op == "AttentionCore":
            from stc.runtime.interpreter import _attention_core

            return _attention_core(n, ins, fixed, self.kernel_backend)
        if op == "TokenMean":
            return x.to(torch.float32).mean(dim=-2) if fixed else x.mean(dim=-2)
        raise ValueError(f"node {n.name!r}: op {op} is not supported by the stream runtime")
