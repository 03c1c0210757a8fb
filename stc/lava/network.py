"""Whole-graph Lava execution of fixed-point graphs that netx cannot express (residual adds,
attention cores, layout changes): a process graph of Lava's own fixed_pt Dense and LIFReset
processes plus stc's custom processes, run pipelined in Loihi2SimCfg(select_tag='fixed_pt').

:func:`build_process_graph` (no Lava needed) turns a quantised graph (stc.passes.quantize;
transformers are lowered there) into :class:`ProcSpec` entries, one per IR node that does
work on chip:

* ``Linear`` / ``Conv2d`` -> ``dense``: Lava ``Dense`` with the layer unrolled to a matrix
  [out, in] over the flat row-major per-sample tensors (a token-wise Linear is kron(I_N, W);
  a convolution its Toeplitz matrix), graded input (24-bit messages) unless the input is
  spikes. One step of latency.
* ``LoihiCubaLIF`` -> ``lif``: Lava ``LIFReset`` (fixed_pt: bit-accurate CUBA LIF) with
  ``reset_interval = T`` and ``reset_offset`` = the step its sample's first input arrives.
* ``Pool2d`` max on spikes -> ``or_pool``: a ones ``Dense`` into OR neurons (fires iff a
  window spike arrived). One step of latency.
* ``Add`` -> ``add``: ``stc.lava.processes.add.DelayedAdd`` (branches aligned by delays).
* ``ToTokens`` -> ``route``: ``stc.lava.processes.route.Route`` (a permutation; free on chip).
* ``AttentionCore`` -> ``attention``: ``stc.lava.processes.attention`` (SSA / DSFormer; host or
  embedded core on Loihi 2), latency ``window_size``.
* ``Repeat`` / ``Flatten``: no process (the source repeats; a flatten is the same vector).

Timing: each value has a depth, the Lava step at which sample 0's first step appears; a
process whose inputs differ in depth gets alignment delays. Every stateful process starts
each sample from rest at its own depth (netx's staggered reset), so the spikes equal the stc
runtime's delay-free fixed mode (stc.runtime.interpreter) bit for bit; what a bias charges
before a sample arrives is cleared by that reset, and garbage always reaches the next process
before its own reset. The nodes after the last on-chip value (stc.passes.quantize's host
readout: TokenMean, the classifier Linear, TimeMean) run on the host with the runtime's own
code on the integer values read back from Lava (one ring-buffer sink; nothing else is read).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from stc.errors import MappingError

HOST_OPS = ("TokenMean", "TimeMean", "Output")
CHIP_OPS = ("Input", "Repeat", "Linear", "Conv2d", "LoihiCubaLIF", "Pool2d", "Add", "Flatten",
            "ToTokens", "AttentionCore", "SDSACore")
# producers whose output is a value a LoihiCubaLIF can read as its synaptic input (same step)
VALUE_KINDS = ("dense", "attention", "add", "route", "max_pool")


@dataclass
class ProcSpec:
    """One process of the graph. ``kind``: source | dense | lif | or_pool | add | route |
    attention. ``inputs``: producing specs' names; ``depth``: Lava step (0-based) of sample
    0's first output; ``size``: flat output length; ``params``: kind-specific (arrays)."""

    name: str
    kind: str
    inputs: list[str]
    depth: int
    size: int
    params: dict = field(default_factory=dict)
    graded: bool = False  # output values can exceed 1 (graded spikes)

    def summary(self) -> dict:
        """JSON-ready description (arrays summarised by their shape)."""
        p = {k: (list(v.shape) if isinstance(v, (np.ndarray, Unrolled, Composed)) else v)
             for k, v in self.params.items()}
        return {"name": self.name, "kind": self.kind, "inputs": self.inputs,
                "depth": self.depth, "size": self.size, "graded": self.graded, "params": p}


@dataclass
class ProcessGraph:
    """Specs in topological order, the value read back (``boundary``), T, and the host
    readout sub-graph (an stc.ir.Graph whose temporal Input is named ``boundary``)."""

    specs: list[ProcSpec]
    boundary: str
    boundary_shape: tuple[int, ...]
    time_steps: int
    temporal_input: bool
    input_name: str
    input_shape: tuple[int, ...]
    readout: object  # stc.ir.Graph
    output_names: list[str]
    input_scale: float | None = None  # the fixed graph's input quantisation (contract.py)

    @property
    def latency(self) -> int:
        """Steps from the first input to the first boundary value."""
        return self.spec(self.boundary).depth

    def spec(self, name: str) -> ProcSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise KeyError(name)


def _np_param(graph, node, slot):
    t = graph.param(node, slot)
    return None if t is None else t.detach().cpu()


class Unrolled:
    """A layer's matrix [out_flat, in_flat], computed when a Lava process needs it
    (``array()``): mapping a large model must not build its unrolled matrices."""

    def __init__(self, graph, node, in_shape: tuple[int, ...]) -> None:
        self._graph, self._node, self._in = graph, node, tuple(in_shape)
        self.shape = (int(np.prod(node.shape)), int(np.prod(in_shape)))

    def array(self) -> np.ndarray:
        return _unroll(self._graph, self._node, self._in)


class Composed:
    """``outer.array() @ inner.array()``: a sum pool of spikes folded into the synapse layer
    that reads it (exact integer arithmetic), computed when a Lava process needs it.

    Raises (from ``array()``):
        MappingError: the composed integer weights are ones Lava's Dense would change
            (overlapping pool windows can add weights up; stc.ir.graph.loihi_weight_problem).
    """

    def __init__(self, name: str, outer: Unrolled, inner: Unrolled) -> None:
        self._name, self._outer, self._inner = name, outer, inner
        self.shape = (outer.shape[0], inner.shape[1])

    def array(self) -> np.ndarray:
        from stc.ir.graph import loihi_weight_problem

        m = self._outer.array() @ self._inner.array()
        problem = loihi_weight_problem(torch.from_numpy(m))
        if problem is not None:
            raise MappingError(f"node {self._name!r} with the sum pool before it folded in: "
                               f"{problem}")
        return m


def _unroll(graph, node, in_shape: tuple[int, ...]) -> np.ndarray:
    """Matrix M [out_flat, in_flat] of a Linear / Conv2d / Pool2d (sum of a window) node."""
    size = int(np.prod(in_shape))
    if node.OP == "Linear":
        w = _np_param(graph, node, "weight").to(torch.int64).numpy()
        if len(in_shape) == 1:
            return w
        n = int(np.prod(in_shape[:-1]))
        return np.kron(np.eye(n, dtype=np.int64), w)
    basis = torch.eye(size, dtype=torch.float64).reshape(size, *in_shape)
    if node.OP == "Conv2d":
        w = _np_param(graph, node, "weight").to(torch.float64)
        y = F.conv2d(basis, w, None, node.stride, node.padding, node.dilation, node.groups)
    else:  # Pool2d: ones kernel per channel (OR neurons for max on spikes)
        c = in_shape[0]
        w = torch.ones(c, 1, *node.kernel_size, dtype=torch.float64)
        y = F.conv2d(basis, w, None, node.stride, node.padding, 1, c)
    return y.reshape(size, -1).T.round().to(torch.int64).numpy()


def _readout_graph(graph, boundary: str, host: list[str]):
    """The host nodes as a graph whose temporal Input is the boundary value."""
    import copy

    from stc.ir import Graph
    from stc.ir import nodes as ir

    g = Graph(metadata=dict(graph.metadata))
    g.nodes.append(ir.Input(name=boundary, shape=tuple(graph.node(boundary).shape),
                            temporal=True, datatype="INT32"))
    for name in host:
        n = copy.deepcopy(graph.node(name))
        g.nodes.append(n)
        for key in n.params.values():
            g.tensors[key] = graph.tensors[key]
    return g.verify()


def build_process_graph(graph) -> ProcessGraph:
    """Process graph of a quantised graph (see the module docstring).

    Raises:
        MappingError: naming the nodes that cannot run on chip (float neurons, average or
            sum pooling on graded values, a LoihiCubaLIF fed by no synapse / core, several
            on-chip values read by the host readout, several inputs).
    """
    from stc.passes.quantize import _host_readout
    from stc.passes.quantize_residual import _host_tail
    from stc.runtime.contract import input_scales

    try:
        graph.verify(check_tensors=True)
    except Exception as e:  # noqa: BLE001 - GraphError and friends
        raise MappingError(f"graph does not verify: {e}") from e
    host_set = _host_readout(graph) | _host_tail(graph)  # SDT: the tail from TokenMean on
    grown = True  # a sum pool / flatten read only by the host runs there too (exact on counts)
    while grown:
        grown = False
        for n in graph.nodes:
            cons = graph.consumers(n.name)
            if n.name not in host_set and cons and all(c.name in host_set for c in cons) and (
                    n.OP == "Flatten" or (n.OP == "Pool2d" and n.kind == "sum")):
                host_set.add(n.name)
                grown = True
    bad = [n for n in graph.nodes if n.OP not in CHIP_OPS + HOST_OPS and n.name not in host_set]
    floats = [n for n in graph.nodes if n.OP in ("LIF", "IF", "CubaLIF", "BatchNorm",
                                                  "SpikeAttention", "Scale")
              and n.name not in host_set]
    if floats or bad:
        raise MappingError("a Lava process graph needs a quantised graph (stc.passes.quantize);"
                           " these nodes have no fixed-point process: " + ", ".join(
                               f"{n.name!r} ({n.OP})" for n in floats + bad))
    ins = graph.inputs()
    if len(ins) != 1:
        raise MappingError(f"a Lava process graph needs exactly one Input, got {len(ins)}")
    inp = ins[0]
    host = [n.name for n in graph.nodes if n.name in host_set]
    reps = [n for n in graph.nodes if n.OP == "Repeat"]
    T = int(reps[0].time_steps) if reps else int(graph.metadata.get("time_steps", 0))
    specs: dict[str, ProcSpec] = {}
    alias: dict[str, str] = {}  # IR value -> spec producing it
    order: list[ProcSpec] = []

    pooled: dict[str, tuple] = {}  # sum pool of spikes -> (its input spec, pool matrix)

    def src(name: str) -> ProcSpec:
        if name in pooled:
            raise MappingError(f"node {name!r}: sum pooling of spikes maps to Loihi only when "
                               "a synapse layer (Linear / Conv2d) reads it (the pool is "
                               "folded into that layer's matrix)")
        return specs[alias[name]]

    def put(spec: ProcSpec, node_name: str) -> None:
        specs[spec.name] = spec
        alias[node_name] = spec.name
        order.append(spec)

    for n in graph.nodes:
        if n.name in host:
            continue
        op = n.OP
        size = int(np.prod(n.shape))
        if op == "Input":
            put(ProcSpec(n.name, "source", [], 0, size, graded=True), n.name)
        elif op in ("Repeat", "Flatten"):
            if n.inputs[0] in pooled:
                pooled[n.name] = pooled[n.inputs[0]]
            else:
                alias[n.name] = alias[n.inputs[0]]
        elif op in ("Linear", "Conv2d"):
            in_shape = tuple(graph.node(n.inputs[0]).shape)
            weight = Unrolled(graph, n, in_shape)
            if n.inputs[0] in pooled:  # sum pool -> synapse: one matrix, M_syn @ M_pool
                x, pool = pooled[n.inputs[0]]
                weight = Composed(n.name, weight, pool)
            else:
                x = src(n.inputs[0])
            b = _np_param(graph, n, "bias")
            if b is not None and bool((b != 0).any()):
                raise MappingError(f"node {n.name!r} ({op}): a synaptic bias has no Loihi "
                                   "form; stc.passes.quantize moves it to the neuron")
            put(ProcSpec(n.name, "dense", [x.name], x.depth + 1, size,
                         {"weight": weight, "graded_in": x.graded}), n.name)
        elif op == "Pool2d":
            x = src(n.inputs[0])
            in_shape = tuple(graph.node(n.inputs[0]).shape)
            if n.kind == "max" and x.kind in VALUE_KINDS:  # graded values (SDT's stream)
                from .processes.pool import window_indices

                put(ProcSpec(n.name, "max_pool", [x.name], x.depth, size,
                             {"idx": window_indices(in_shape, n.kernel_size, n.stride,
                                                    n.padding),
                              "n_in": int(np.prod(in_shape))}, graded=True), n.name)
                continue
            if n.kind == "sum" and not x.graded and x.kind == "lif":
                pooled[n.name] = (x, Unrolled(graph, n, in_shape))
                continue
            if n.kind != "max" or x.graded or x.kind != "lif":
                raise MappingError(f"node {n.name!r}: only max pooling of LIF spikes maps to "
                                   "Loihi (OR neurons)")
            put(ProcSpec(n.name, "or_pool", [x.name], x.depth + 1, size,
                         {"weight": Unrolled(graph, n, tuple(graph.node(n.inputs[0]).shape))}),
                n.name)
        elif op == "LoihiCubaLIF":
            x = src(n.inputs[0])
            if x.kind not in VALUE_KINDS:
                raise MappingError(f"node {n.name!r}: a LoihiCubaLIF must read a synapse "
                                   f"layer, an attention core or a membrane stream, not "
                                   f"{x.kind} {x.name!r}")
            bias = _np_param(graph, n, "bias")
            bias = np.zeros(size, np.int64) if bias is None else \
                bias.to(torch.int64).numpy().reshape(-1)
            put(ProcSpec(n.name, "lif", [x.name], x.depth, size,
                         {"i_decay": int(n.i_decay), "v_decay": int(n.v_decay),
                          "v_th_mant": int(n.v_th_mant), "bias": bias,
                          "bias_exp": int(n.bias_exp)}), n.name)
        elif op == "Add":
            xs = [src(s) for s in n.inputs]
            depth = max(x.depth for x in xs)
            prev = xs[0]
            for i, x in enumerate(xs[1:]):  # chain of two-input adds
                name = n.name if i == len(xs) - 2 else f"{n.name}#{i}"
                spec = ProcSpec(name, "add", [prev.name, x.name], depth, size,
                                {"delay_a": depth - prev.depth, "delay_b": depth - x.depth},
                                graded=True)
                if name == n.name:
                    put(spec, n.name)
                else:
                    specs[name] = spec
                    order.append(spec)
                prev = spec
        elif op == "ToTokens":
            x = src(n.inputs[0])
            in_shape = tuple(graph.node(n.inputs[0]).shape)
            idx = torch.arange(int(np.prod(in_shape))).reshape(in_shape)
            perm = idx.flatten(-2).transpose(-1, -2).reshape(-1).numpy()
            put(ProcSpec(n.name, "route", [x.name], x.depth, size, {"perm": perm},
                         graded=x.graded), n.name)
        elif op == "AttentionCore":
            xs = [src(s) for s in n.inputs]
            if len({x.depth for x in xs}) != 1 or any(x.kind != "lif" for x in xs):
                raise MappingError(f"node {n.name!r}: q, k and v must be LIF spikes of one "
                                   "depth")
            d = xs[0].depth
            put(ProcSpec(n.name, "attention", [x.name for x in xs], d + int(n.window_size),
                         size, {"shape": tuple(int(s) for s in n.shape),
                                "num_heads": int(n.num_heads),
                                "window_size": int(n.window_size),
                                "sparse_ratio": float(n.sparse_ratio), "offset": d,
                                "gain": int(n.gain)}, graded=True), n.name)
        elif op == "SDSACore":
            from .processes.sdsa import SDSA_LATENCY

            xs = [src(s) for s in n.inputs]
            if len({x.depth for x in xs}) != 1 or any(x.kind != "lif" for x in xs):
                raise MappingError(f"node {n.name!r}: q, k and v must be LIF spikes of one "
                                   "depth")
            put(ProcSpec(n.name, "sdsa", [x.name for x in xs], xs[0].depth + SDSA_LATENCY,
                         size, {"n_tokens": int(n.shape[0]), "dim": int(n.shape[1])}),
                n.name)
        else:
            raise MappingError(f"node {n.name!r}: op {op} has no Lava process")
    read = sorted({s for h in host for s in graph.node(h).inputs if s not in host})
    if len(read) != 1:
        raise MappingError(f"the host readout must read exactly one on-chip value, reads "
                           f"{read}")
    boundary = read[0]
    readout = _readout_graph(graph, boundary, host)
    return ProcessGraph(specs=order, boundary=alias[boundary],
                        boundary_shape=tuple(int(s) for s in graph.node(boundary).shape),
                        time_steps=T, temporal_input=bool(inp.temporal), input_name=inp.name,
                        input_shape=tuple(int(s) for s in inp.shape), readout=readout,
                        output_names=[o.name for o in graph.outputs()],
                        input_scale=input_scales(graph).get(inp.name))


def _instantiate(pg: ProcessGraph, T: int):
    """Create and connect the Lava processes; returns (the InPorts reading the graph input,
    the boundary OutPort)."""
    from stc.lava.compat import import_lava

    import_lava()
    from lava.proc.dense.process import Dense
    from lava.proc.lif.process import LIF, LIFReset

    from .processes.add import DelayedAdd
    from .processes.attention import SpikeAttentionProcess
    from .processes.route import Route

    out: dict[str, object] = {}  # spec name -> OutPort
    inp: dict[str, list] = {}  # spec name -> InPorts in input order
    fed: list = []  # InPorts reading the source
    for s in pg.specs:
        p = s.params
        if s.kind == "source":
            continue
        if s.kind in ("dense", "or_pool"):
            dense = Dense(weights=p["weight"].array().astype(np.int32),
                          num_message_bits=24 if p.get("graded_in") else 0)
            if s.kind == "dense":
                out[s.name], inp[s.name] = dense.a_out, [dense.s_in]
            else:
                orn = LIF(shape=(s.size,), du=4095, dv=4096, vth=0, bias_mant=0, bias_exp=0)
                dense.a_out.connect(orn.a_in)
                out[s.name], inp[s.name] = orn.s_out, [dense.s_in]
        elif s.kind == "lif":
            lif = LIFReset(shape=(s.size,), du=p["i_decay"] - 1, dv=p["v_decay"],
                           vth=p["v_th_mant"], bias_mant=p["bias"].astype(np.int32),
                           bias_exp=p["bias_exp"], reset_interval=T,
                           reset_offset=(s.depth + 1) % T)
            out[s.name], inp[s.name] = lif.s_out, [lif.a_in]
        elif s.kind == "add":
            add = DelayedAdd(shape=(s.size,), delay_a=p["delay_a"], delay_b=p["delay_b"])
            out[s.name], inp[s.name] = add.out, [add.a_in, add.b_in]
        elif s.kind == "route":
            r = Route(perm=p["perm"])
            out[s.name], inp[s.name] = r.s_out, [r.s_in]
        elif s.kind == "max_pool":
            from .processes.pool import MaxPool

            mp = MaxPool(idx=p["idx"], n_in=p["n_in"])
            out[s.name], inp[s.name] = mp.s_out, [mp.s_in]
        elif s.kind == "sdsa":
            from .processes.sdsa import build_sdsa

            blk = build_sdsa(p["n_tokens"], p["dim"])
            out[s.name], inp[s.name] = blk.out, [blk.q_in, blk.k_in, blk.v_in]
        elif s.kind == "attention":
            att = SpikeAttentionProcess(shape=p["shape"], num_heads=p["num_heads"],
                                        time_steps=T, window_size=p["window_size"],
                                        sparse_ratio=p["sparse_ratio"], offset=p["offset"],
                                        gain=p["gain"], flat=True)
            out[s.name], inp[s.name] = att.out, [att.q_in, att.k_in, att.v_in]
        for name, port in zip(s.inputs, inp[s.name]):
            if pg.spec(name).kind == "source":
                fed.append(port)
            else:
                out[name].connect(port)
    return fed, out[pg.boundary]


def run_process_graph(pg: ProcessGraph, x: np.ndarray, *, hardware: bool = False
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run a batch through Lava, pipelined (module docstring).

    Args:
        pg: from :func:`build_process_graph`.
        x: input [B, *input_shape] (repeated over T) or [B, T, *input_shape] for a
            temporal input: the float model's input when the graph has an input quantisation
            (``pg.input_scale``: round(x * scale) is applied here, as stc.runtime does), else
            integers; non-negative values below 2**23 after that.
        hardware: Loihi2HwCfg instead of the simulator (needs lava-loihi; not validated).

    Returns:
        (boundary values int64 [B, T, *boundary_shape], host readout outputs {name: array},
        batch-first, as the runtime's fixed mode returns them).

    Raises:
        TypeError / ValueError: bad ``x``. Any Lava error, after Lava has been stopped.
    """
    from stc.runtime.contract import quantize_input

    from .executor import _check_input
    from .processes.common import run_process_graph as run_lava

    xa = quantize_input(np.asarray(x), pg.input_scale)
    if not pg.temporal_input:
        if xa.ndim != 1 + len(pg.input_shape):
            raise ValueError(f"x must have shape [B, {', '.join(map(str, pg.input_shape))}], "
                             f"got {xa.shape}")
        xa = np.repeat(xa[:, None], pg.time_steps, axis=1)
    xi = _check_input(xa, pg.input_shape)
    B, T = xi.shape[:2]
    if pg.time_steps and T != pg.time_steps:
        raise ValueError(f"x has T = {T}, the network was built for T = {pg.time_steps}")
    latency = pg.latency
    steps = B * T + latency
    data = np.zeros((int(np.prod(pg.input_shape)), steps), np.int32)
    data[:, :B * T] = xi.reshape(B * T, -1).T
    fed, port = _instantiate(pg, T)
    got = run_lava(((p, data) for p in fed), port, steps, hardware=hardware)
    vals = got[latency: latency + B * T].reshape(B, T, *pg.boundary_shape)
    return vals, run_readout(pg, vals)


def run_readout(pg: ProcessGraph, vals: np.ndarray) -> dict[str, np.ndarray]:
    """The host readout on boundary values [B, T, *shape] -> {output name: batch-first}."""
    from stc.runtime.interpreter import execute

    name = pg.readout.inputs()[0].name
    feeds = {name: torch.from_numpy(np.ascontiguousarray(np.swapaxes(vals, 0, 1)))}
    res = execute(pg.readout, feeds, numerics="fixed", stats=False)
    temporal = pg.readout.temporal()
    outs = {}
    for name, y in res.outputs.items():
        y = y.detach().cpu()
        outs[name] = (y.transpose(0, 1) if temporal[name] else y).to(torch.float32).numpy()
    return outs


def with_tap(graph, name: str, tap: str = "boundary"):
    """A copy of ``graph`` with an extra Output ``tap`` reading node ``name``: run it with the
    runtime to get the value a :class:`ProcessGraph` reads back (for comparisons).

    Raises:
        KeyError: no node ``name``. ValueError: ``tap`` is already a node name.
    """
    from stc.ir import nodes as ir

    graph.node(name)
    if any(n.name == tap for n in graph.nodes):
        raise ValueError(f"node name {tap!r} is taken")
    g = graph.copy()
    g.add(ir.Output(name=tap, inputs=[name], shape=tuple(graph.node(name).shape)))
    return g.verify()
