"""Map an stc IR graph onto Loihi 2 through Lava: netx layers, custom processes, placement.

:func:`graph_to_layers` turns the spiking chain of a fixed-point graph into the layer list of
``stc.lava.layers`` (exported as netx HDF5):

* ``Linear`` / ``Conv2d`` (integer weights, no synaptic bias) + ``LoihiCubaLIF`` -> dense/conv
  layer with a CUBA neuron group (the LIF's ``bias`` slot becomes netx ``bias``).
* ``Flatten`` -> netx flatten (torch C, H, W order).
* ``LoihiCubaLIF -> Pool2d(sum) -> LoihiCubaLIF`` -> a depthwise conv with weights 1 feeding
  that LIF. ``LoihiCubaLIF -> Pool2d(max)`` on binary spikes -> a depthwise conv with weights
  1 and an "OR" neuron (iDecay = vDecay = 4096, vThMant 0: fires iff a window spike arrived).
  Each pooling layer adds one step of latency in Lava (removed by the executor).
* ``Input`` (optionally ``Repeat``) at the start; ``TimeMean`` / ``Output`` after the last LIF.

Nodes netx cannot express (``Add``, ``ToTokens``, ``AttentionCore``): :func:`map_graph`
places them with ``stc.lava.plan`` (SSA / DSFormer cores on host / embedded cores) and builds
a Lava process graph (``stc.lava.network``) that the lava-sim executor runs. A graph that still
holds fused ``SpikeAttention`` nodes (not lowered by stc.passes.quantize) gets a placement
plan only, which the executor refuses; :func:`graph_to_layers` raises MappingError naming the
nodes either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from stc.errors import MappingError

from .layers import ConvLayer, Cuba, DenseLayer, FlattenLayer, InputLayer, validate_layers
from .netx_export import write_netx
from .resources import DEFAULT_FIRING_RATE, Allocation, LayerDemand, allocate

NETX_MEMBER = "loihi/network.net"
MAPPING_MEMBER = "loihi/mapping.json"

# ops realised by custom Lava processes (stc.lava.processes), and where they run on hardware
CUSTOM_PROCESSES = {
    "Add": ("stc.lava.processes.add.DelayedAdd", "neurocore (graded dendritic sum)"),
    "SpikeAttention:sdsa": ("stc.lava.processes.sdsa.build_sdsa",
                            "neurocore (AND / OR neurons + relays)"),
    "SpikeAttention:ssa": ("stc.lava.processes.attention.SSAProcess", "host/embedded core"),
    "SpikeAttention:dsformer": ("stc.lava.processes.attention.DSFormerProcess",
                                "host/embedded core"),
}


@dataclass
class NetxNetwork:
    """A graph's spiking chain as netx layers plus how to feed and read it."""

    layers: list
    time_steps: int  # T of the Repeat encoder; 0 for a temporal input (T comes with x)
    temporal_input: bool
    time_mean: bool
    input_name: str
    output_name: str
    runtime_latency: int  # synapse layers of the graph (Linear/Conv2d): the runtime's delay
    node_of_layer: list[str] = field(default_factory=list)
    input_datatype: str = "FP32"


def _np(graph, tensors, node, slot):
    key = node.params.get(slot)
    if key is None:
        return None
    t = tensors[key]
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def _cuba(node) -> Cuba:
    try:
        return Cuba(int(node.i_decay), int(node.v_decay), int(node.v_th_mant))
    except ValueError as e:
        raise MappingError(f"node {node.name!r}: {e}") from None


def unmappable_reason(node) -> str:
    """Why the netx path cannot map ``node``, and what implements it instead."""
    if node.OP == "Add":
        proc, where = CUSTOM_PROCESSES["Add"]
        return (f"residual add: run as {proc} ({where}) with alignment delays; whole-graph "
                "execution of custom processes is not wired into the executor yet")
    if node.OP == "SpikeAttention":
        key = f"SpikeAttention:{getattr(node, 'kind', '?')}"
        if key in CUSTOM_PROCESSES:
            proc, where = CUSTOM_PROCESSES[key]
            return (f"{node.kind} attention: run as {proc} ({where}); whole-graph execution "
                    "of custom processes is not wired into the executor yet")
        return f"unknown attention kind {getattr(node, 'kind', None)!r}"
    return {"BatchNorm": "fold BatchNorm first (stc.passes)",
            "Scale": "fold Scale into the weights first",
            "TokenMean": "token mean is not a Loihi op"}.get(
        node.OP, "float neuron: quantise to LoihiCubaLIF first (stc.passes)")


def graph_to_layers(graph, tensors=None) -> NetxNetwork:
    """Convert a fixed-point MLP/CNN SNN graph into netx layers (see module docstring).

    Args:
        graph: ``stc.ir.Graph`` (verified or not; it is verified here).
        tensors: tensor dict, defaults to ``graph.tensors``.

    Raises:
        MappingError: naming the node(s) and why (unsupported op, float LIF, synaptic bias,
            weights Loihi cannot hold, branching, pooling not between spiking layers, ...).
    """
    tensors = graph.tensors if tensors is None else tensors
    try:
        graph.verify(check_tensors=True)
    except Exception as e:  # GraphError and friends
        raise MappingError(f"graph does not verify: {e}") from e
    nodes = list(graph.nodes)
    bad = [n for n in nodes if n.OP in ("Add", "SpikeAttention", "LIF", "IF", "CubaLIF",
                                        "BatchNorm", "Scale", "TokenMean")]
    if bad:
        raise MappingError("the netx path cannot map these nodes: " + "; ".join(
            f"{n.name!r} ({n.OP}): {unmappable_reason(n)}" for n in bad))
    for n in nodes:
        if len(graph.consumers(n.name)) > 1:
            raise MappingError(f"node {n.name!r} ({n.OP}) feeds several nodes; the netx path "
                               "maps single chains only")
    ins = graph.inputs()
    outs = graph.outputs()
    if len(ins) != 1 or len(outs) != 1:
        raise MappingError(f"the netx path needs exactly one Input and one Output, got "
                           f"{len(ins)} and {len(outs)}")
    inp = ins[0]
    T = None
    temporal = bool(inp.temporal)
    if not temporal:
        reps = [n for n in nodes if n.OP == "Repeat"]
        if len(reps) != 1:
            raise MappingError(f"input {inp.name!r} is static: the graph needs one Repeat "
                               "encoder before the first synapse layer")
        T = int(reps[0].time_steps)
    else:
        T = int(graph.metadata.get("time_steps", 0))  # 0: T comes with each input
    layers: list = [InputLayer(tuple(int(s) for s in inp.shape))]
    owner = [inp.name]
    shape = tuple(layers[0].shape)
    pending = None  # synapse layer waiting for its LIF: (kind, node, weight, extra)
    pending_pool = None  # max-pool waiting to be emitted / sum-pool waiting for a LIF
    time_mean = False
    last_spiking = False
    runtime_latency = 0
    for n in nodes:
        op = n.OP
        if op in ("Input", "Output"):
            continue
        if op == "Repeat":
            if len(layers) > 1:
                raise MappingError(f"node {n.name!r}: Repeat must come before any layer")
            continue
        if time_mean:
            raise MappingError(f"node {n.name!r} ({op}) after TimeMean cannot run on Loihi")
        if op in ("Linear", "Conv2d"):
            if pending is not None or pending_pool is not None:
                raise MappingError(f"node {n.name!r}: two synapse layers in a row; netx needs "
                                   "a LoihiCubaLIF after each Linear/Conv2d")
            b = _np(graph, tensors, n, "bias")
            if b is not None and np.any(b != 0):
                raise MappingError(f"node {n.name!r} ({op}): a synaptic bias has no netx form;"
                                   " move it to the following LoihiCubaLIF's bias")
            w = _np(graph, tensors, n, "weight")
            pending = (op, n, w)
            runtime_latency += 1
        elif op == "Pool2d":
            if not last_spiking or pending is not None:
                raise MappingError(f"node {n.name!r} (Pool2d): pooling maps to Loihi only "
                                   "directly after a LoihiCubaLIF (spikes in)")
            if n.kind not in ("max", "sum"):
                raise MappingError(f"node {n.name!r}: Pool2d kind {n.kind!r} has no fixed "
                                   "form; use 'sum' or 'max'")
            c = shape[0]
            w = np.ones((c, 1, *n.kernel_size), np.int64)
            common = dict(in_shape=shape, stride=tuple(n.stride), padding=tuple(n.padding),
                          groups=c, name=n.name)
            if n.kind == "max":
                try:
                    lay = ConvLayer(w, Cuba(4096, 4096, 0), **common)
                except ValueError as e:
                    raise MappingError(f"node {n.name!r}: {e}") from None
                layers.append(lay)
                owner.append(n.name)
                shape = lay.shape
            else:
                pending_pool = (n, w, common)
            last_spiking = n.kind == "max"
        elif op == "LoihiCubaLIF":
            neuron = _cuba(n)
            bias = _np(graph, tensors, n, "bias")
            try:
                if pending_pool is not None:
                    pn, w, common = pending_pool
                    lay = ConvLayer(w, neuron, bias=_bias_vec(bias, w.shape[0], n),
                                    **common)
                    pending_pool = None
                elif pending is None:
                    raise MappingError(f"node {n.name!r}: LoihiCubaLIF without a preceding "
                                       "Linear/Conv2d (netx layers are synapse + neuron)")
                else:
                    kind, sn, w = pending
                    if kind == "Linear":
                        lay = DenseLayer(w, neuron, bias=_bias_vec(bias, w.shape[0], n),
                                         name=sn.name)
                    else:
                        lay = ConvLayer(w, neuron, in_shape=shape, stride=tuple(sn.stride),
                                        padding=tuple(sn.padding),
                                        dilation=tuple(sn.dilation), groups=int(sn.groups),
                                        bias=_bias_vec(bias, w.shape[0], n), name=sn.name)
                    pending = None
            except (TypeError, ValueError) as e:
                if isinstance(e, MappingError):
                    raise
                raise MappingError(f"node {n.name!r}: {e}") from None
            if tuple(lay.shape) != tuple(int(s) for s in n.shape):
                raise MappingError(f"node {n.name!r}: Lava layer shape {lay.shape} differs "
                                   f"from the graph's {tuple(n.shape)}")
            layers.append(lay)
            owner.append(n.name)
            shape = lay.shape
            last_spiking = True
        elif op == "Flatten":
            if pending is not None or pending_pool is not None:
                raise MappingError(f"node {n.name!r}: Flatten between a synapse and its LIF")
            if len(shape) == 3:
                if (n.start_dim % 3, n.end_dim % 3) != (0, 2):
                    raise MappingError(f"node {n.name!r}: only a full (C,H,W) flatten maps")
                layers.append(FlattenLayer(shape))
                owner.append(n.name)
                shape = layers[-1].shape
        elif op == "TimeMean":
            time_mean = True
        else:
            raise MappingError(f"node {n.name!r}: op {op} has no Loihi mapping")
    if pending is not None:
        raise MappingError(f"node {pending[1].name!r} ({pending[0]}): the last synapse layer "
                           "needs a LoihiCubaLIF (lava-sim reads output spikes only)")
    if pending_pool is not None:
        raise MappingError(f"node {pending_pool[0].name!r}: sum pooling needs a LoihiCubaLIF")
    try:
        validate_layers(layers)
    except (TypeError, ValueError) as e:
        raise MappingError(f"layers do not chain: {e}") from None
    return NetxNetwork(layers=layers, time_steps=T, temporal_input=temporal,
                       time_mean=time_mean, input_name=inp.name, output_name=outs[0].name,
                       runtime_latency=runtime_latency, node_of_layer=owner,
                       input_datatype=str(getattr(inp, "datatype", "FP32")))


def _bias_vec(bias, n_out: int, node):
    if bias is None:
        return None
    b = np.asarray(bias).reshape(-1)
    if b.size == 1:
        return np.full(n_out, b[0])
    if b.size != n_out:
        if b.size % n_out == 0 and np.all(b.reshape(n_out, -1) == b.reshape(n_out, -1)[:, :1]):
            return b.reshape(n_out, -1)[:, 0]  # per-channel bias stored per position
        raise MappingError(f"node {node.name!r}: bias must be per output channel "
                           f"({n_out}), got {b.size} values")
    return b


def layer_demands(net: NetxNetwork, firing_rates: dict[str, float] | None = None):
    """Per-layer resource demands (``resources.LayerDemand``) of a netx network."""
    rates = firing_rates or {}
    demands = []
    prev = None
    for lay, node in zip(net.layers, net.node_of_layer):
        if isinstance(lay, (InputLayer, FlattenLayer)):
            if isinstance(lay, InputLayer):
                prev = node
            continue
        in_size = int(lay.weight.shape[1]) if isinstance(lay, DenseLayer) else \
            int(np.prod(lay.in_shape))
        n = int(np.prod(lay.shape))
        if isinstance(lay, DenseLayer):
            d = LayerDemand(name=node, neurons=n, fan_in=in_size, in_size=in_size)
        else:
            kh, kw = lay.weight.shape[2:]
            _, h, w = lay.in_shape
            d = LayerDemand(name=node, neurons=n, kernel_bytes=int(lay.weight.size),
                            in_size=in_size, in_axons_full=False,
                            halo=int(lay.in_shape[0] * (kh + 1) * w))
        d.sources = [prev] if prev else []
        d.firing_rate = float(rates.get(node, DEFAULT_FIRING_RATE))
        demands.append(d)
        prev = node
    return demands


@dataclass
class LoihiMapping:
    """A mapped graph: netx network, custom processes, allocation and report.

    ``members()`` gives the bundle's loihi/ files: ``loihi/network.net`` (netx HDF5) and
    ``loihi/mapping.json`` (processes, placement, report, chip_config). A graph with custom-
    process nodes (``Add``, ``SpikeAttention``) gets a placement plan only: ``network`` and
    ``netx_bytes`` are None, ``custom_nodes`` names those nodes, and the lava-sim executor
    refuses it with a MappingError.
    """

    network: NetxNetwork | None
    netx_bytes: bytes | None
    allocation: Allocation
    chip_config: str
    processes: list[dict]
    custom_nodes: list[str] = field(default_factory=list)
    float_nodes: list[str] = field(default_factory=list)  # plan of a float graph: quantise
    process_graph: object = None  # stc.lava.network.ProcessGraph of a fixed graph with them

    @property
    def executable(self) -> bool:
        """True when the whole graph runs in Lava: one netx network, or a process graph."""
        return self.network is not None or self.process_graph is not None

    def mapping_dict(self) -> dict:
        """JSON-ready description: layers -> process, placement per core, report."""
        net = self.network
        return {
            "format": "stc-loihi-mapping/1",
            "target": "loihi2",
            "chip_config": self.chip_config,
            "executable": self.executable,
            "custom_nodes": self.custom_nodes,
            "float_nodes": self.float_nodes,
            "note": None if not self.float_nodes else
            "placement estimate of a float graph: quantise (stc.passes) before deployment",
            "time_steps": None if net is None else net.time_steps,
            "input": None if net is None else net.input_name,
            "output": None if net is None else net.output_name,
            "time_mean": None if net is None else net.time_mean,
            "runtime_latency": None if net is None else net.runtime_latency,
            "netx": NETX_MEMBER if net is not None else None,
            "processes": self.processes,
            "process_graph": None if self.process_graph is None else {
                "boundary": self.process_graph.boundary,
                "latency": self.process_graph.latency,
                "time_steps": self.process_graph.time_steps,
                "host_readout": [n.name for n in self.process_graph.readout.nodes[1:]],
                "specs": [s.summary() for s in self.process_graph.specs]},
            "report": self.allocation.report(),
        }

    def members(self) -> dict[str, bytes]:
        """{member path: bytes} for the bundle (``stc.bundle`` ``extra_members`` hook)."""
        text = json.dumps(self.mapping_dict(), sort_keys=True, indent=1).encode("utf-8")
        if self.network is None:
            return {MAPPING_MEMBER: text}
        return {NETX_MEMBER: self.netx_bytes, MAPPING_MEMBER: text}


def map_graph(graph, tensors=None, chip_config: str = "ncl-1chip",
              firing_rates: dict[str, float] | None = None) -> LoihiMapping:
    """Map a fixed-point SNN graph onto Loihi 2 chips.

    Args:
        graph: ``stc.ir.Graph`` quantised to Loihi fixed point (LoihiCubaLIF neurons).
        tensors: tensor dict, defaults to ``graph.tensors``.
        chip_config: "ncl-1chip", "ncl-2chip", ... (``resources.parse_chip_config``).
        firing_rates: measured firing rate per LIF node name (for the traffic estimate);
            missing ones use ``resources.DEFAULT_FIRING_RATE``.

    Returns:
        LoihiMapping (``.members()`` for the bundle). Graphs with ``Add`` / ``SpikeAttention``
        nodes get a placement plan (``stc.lava.plan``: cores, chips, host parts) without a
        netx network (``.executable`` False).

    Raises:
        MappingError: nodes with no Loihi form (named, with the reason), or a network that
            does not fit the chips (names the limit hit).
        ValueError: bad chip_config.
    """
    custom = [n.name for n in graph.nodes if n.OP in ("Add", "SpikeAttention",
                                                      "AttentionCore", "SDSACore", "ToTokens")]
    if not custom:  # a non-spiking readout (a host Linear/Conv, e.g. stc.convert's SNNs)
        from stc.passes.quantize import _host_readout

        host = _host_readout(graph)
        custom = [n.name for n in graph.nodes if n.OP in ("Linear", "Conv2d")
                  and n.name in host]
    if custom:  # a Lava process graph (stc.lava.network) placed by the plan
        from stc.passes.quantize_residual import _host_tail

        from .network import build_process_graph
        from .plan import plan_mapping

        tail = _host_tail(graph)  # SDT: the float head LIF of the host readout
        floats = [n for n in graph.nodes if n.OP in ("LIF", "IF", "CubaLIF", "BatchNorm")
                  and n.name not in tail]
        if floats:
            raise MappingError("map_graph needs a fixed-point graph; quantise these nodes "
                               "first (stc.passes.quantize; or use stc.lava.plan.plan_mapping "
                               "for a float estimate): " + ", ".join(
                                   f"{n.name!r} ({n.OP})" for n in floats))
        mapping = plan_mapping(graph, chip_config, firing_rates)
        if not any(n.OP == "SpikeAttention" for n in graph.nodes):  # else: a plan only
            mapping.process_graph = build_process_graph(graph)
        return mapping
    net = graph_to_layers(graph, tensors)
    alloc = allocate(layer_demands(net, firing_rates), chip_config)
    procs = []
    for lay, node in zip(net.layers, net.node_of_layer):
        kind = type(lay).__name__
        procs.append({"node": node, "layer": kind,
                      "lava_process": {"InputLayer": "lava.proc.io.source.RingBuffer",
                                       "FlattenLayer": "netx flatten (port reshape)",
                                       }.get(kind, "netx Dense/Conv block + LIFReset"),
                      "execution": "host" if kind == "InputLayer" else "neurocore"})
    return LoihiMapping(network=net, netx_bytes=write_netx(net.layers), allocation=alloc,
                        chip_config=chip_config, processes=procs)
