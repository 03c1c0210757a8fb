"""Loihi 2 placement plan for any spiking graph, including what netx cannot express.

``stc.lava.mapping.map_graph`` uses this for graphs with ``SpikeAttention`` / ``Add`` nodes
(transformers, residual nets), and :func:`plan_mapping` for any graph, float or fixed (the
placement does not depend on numerics; a float graph is flagged "quantise before deployment").
Each spiking node becomes one layer of neurons whose synapses are the Linear / Conv2d / Pool2d
nodes met on the way back to the previous spiking nodes:

* ``Linear`` on a flat input: 1 byte per synapse per neuron (dense rows); a token-wise Linear
  on [N, D] and ``Conv2d`` store their kernel once per core (weights shared).
* ``BatchNorm`` / ``Scale`` fold into the synapses; ``ToTokens`` / ``Flatten`` are port
  reshapes; ``TokenMean`` is a layer of graded sum neurons (one per channel, ones kernel).
* ``Pool2d`` on spikes: a layer of OR (max) / sum neurons with a ones kernel; on
  pre-activations (SDT) it folds into the preceding synapse layer.
* ``Add``: no neurons; both branches reach the consumer's dendrites, aligned by axon delays
  (``stc.lava.processes.add.DelayedAdd`` in simulation). A neuron fed only by an Add (SDT's
  membrane shortcut) has one synapse per branch.
* ``SpikeAttention``: q, k, v and output projections (+ LIF) are neurocore layers; the
  attention core is neurons for SDSA (``stc.lava.processes.sdsa``: AND / OR / relays) and a
  host / embedded-core process for SSA and DSFormer (``stc.lava.processes.attention``).
* A final Linear without a neuron is netx's readout layer (non-firing integrators).

Unknown ops raise MappingError naming them.
"""

from __future__ import annotations

import numpy as np

from stc.errors import MappingError

from .resources import DEFAULT_FIRING_RATE, LayerDemand

NEURON_OPS = ("LIF", "IF", "CubaLIF", "LoihiCubaLIF")
_PASS = ("BatchNorm", "Scale", "ToTokens", "Flatten", "Output", "TimeMean")
_SITE = {"Input": "host (spike source)", "Repeat": "host (direct encoding)",
         "Flatten": "port reshape", "ToTokens": "port reshape",
         "BatchNorm": "folded into synapses",
         "Scale": "folded into synapses", "TimeMean": "host (readout)",
         "Output": "host (spike sink)"}


def _syn(node, graph) -> dict:
    """Synapse cost of a Linear / Conv2d / Pool2d node."""
    in_shape = tuple(int(s) for s in graph.node(node.inputs[0]).shape)
    if node.OP == "Linear":
        if len(in_shape) == 1:
            return {"fan_in": node.in_features, "kernel": 0, "full": True, "halo": 0}
        return {"fan_in": 0, "kernel": node.in_features * node.out_features, "full": False,
                "halo": node.in_features}
    kh, kw = node.kernel_size
    kernel = node.out_channels * (node.in_channels // node.groups) * kh * kw \
        if node.OP == "Conv2d" else kh * kw
    return {"fan_in": 0, "kernel": kernel, "full": False,
            "halo": int(in_shape[0] * (kh + 1) * in_shape[-1])}


def plan_graph(graph, firing_rates: dict[str, float] | None = None):
    """(demands, processes) for ``graph`` (verified, topologically ordered).

    Returns:
        demands: ``resources.LayerDemand`` list (host parts have kind "host");
        processes: JSON-ready list of {"node", "op", "lava_process", "execution"}.

    Raises:
        MappingError: an op with no Loihi 2 mapping (named), or no spiking layer at all.
    """
    rates = firing_rates or {}
    demands: list[LayerDemand] = []
    procs: list[dict] = []
    # per node: the spike sources upstream and the synapse cost accumulated since them
    state: dict[str, tuple[list[str], dict | None, int]] = {}

    def add(name, neurons, syn, sources, in_size, kind="netx"):
        syn = syn or {"fan_in": max(1, len(sources)), "kernel": 0, "full": True, "halo": 0}
        d = LayerDemand(name=name, neurons=int(neurons), fan_in=int(syn["fan_in"]),
                        kernel_bytes=int(syn["kernel"]), in_size=int(in_size),
                        in_axons_full=bool(syn["full"]), halo=int(syn["halo"]),
                        sources=list(sources), kind=kind,
                        firing_rate=float(rates.get(name, DEFAULT_FIRING_RATE)))
        if syn["full"] and not syn["fan_in"]:
            d.in_size = min(d.in_size, d.fan_in)
        demands.append(d)
        return d

    for n in graph.nodes:
        op = n.OP
        ins = [state[s] for s in n.inputs]
        srcs = sorted({s for st in ins for s in st[0]})
        syn = next((st[1] for st in ins if st[1] is not None), None)
        in_size = sum(st[2] for st in ins)
        size = int(np.prod(n.shape)) if n.shape else 1
        entry = {"node": n.name, "op": op, "lava_process": "-", "execution": _SITE.get(op, "")}
        if op in ("Input", "Repeat"):
            state[n.name] = ([], None, size)
        elif op in _PASS:
            state[n.name] = (srcs, syn, in_size if syn is not None else size)
            if op in ("TimeMean", "Output") and syn is not None:  # readout synapses
                d = add(f"{n.name}.readout", size, syn, srcs, in_size)
                entry.update(lava_process="netx readout (non-firing CUBA)",
                             execution="neurocore")
                state[n.name] = ([d.name], None, size)
        elif op in ("Linear", "Conv2d"):
            state[n.name] = (srcs, _syn(n, graph), in_size)
            entry.update(lava_process="Dense / Conv synapses",
                         execution="neurocore (with the next neurons)")
        elif op == "Pool2d" and syn is None:  # pooling of spikes: OR / sum neurons
            d = add(n.name, size, _syn(n, graph), srcs, in_size)
            entry.update(lava_process="ones kernel + OR neurons (max) / sum neurons",
                         execution="neurocore")
            state[n.name] = ([d.name], None, size)
        elif op == "TokenMean":  # graded sum over tokens, one neuron per channel
            d = add(n.name, size, {"fan_in": 0, "kernel": 1, "full": False, "halo": 0},
                    srcs, in_size)
            entry.update(lava_process="ones kernel + graded sum neurons",
                         execution="neurocore")
            state[n.name] = ([d.name], None, size)
        elif op == "Pool2d":  # pooling of pre-activations: folded into the synapse layer
            state[n.name] = (srcs, syn, in_size)
            entry["execution"] = "folded into the preceding synapses"
        elif op == "Add":
            merged = None
            for st in ins:
                if st[1] is not None:
                    merged = dict(st[1]) if merged is None else {
                        "fan_in": merged["fan_in"] + st[1]["fan_in"],
                        "kernel": merged["kernel"] + st[1]["kernel"],
                        "full": merged["full"] and st[1]["full"],
                        "halo": merged["halo"] + st[1]["halo"]}
            state[n.name] = (srcs, merged, in_size)
            entry.update(lava_process="stc.lava.processes.add.DelayedAdd",
                         execution="consumer dendrites (axon delays align the branches)")
        elif op in NEURON_OPS:
            if op == "CubaLIF" and getattr(n, "output", "spikes") == "v":
                raise MappingError(f"node {n.name!r} (CubaLIF output 'v'): voltage outputs "
                                   "cannot be read from Loihi neurons cheaply")
            d = add(n.name, size, syn, srcs, in_size)
            entry.update(lava_process="lava.proc.lif LIF (CUBA)", execution="neurocore")
            state[n.name] = ([d.name], None, size)
        elif op == "AttentionCore":  # lowered SSA / DSFormer core: integer products
            d = add(n.name, size, None, srcs, in_size, kind="host")
            entry.update(lava_process="stc.lava.processes.attention.SpikeAttentionProcess",
                         execution="host / embedded x86 core (integer products, top-k)")
            state[n.name] = ([d.name], None, size)
        elif op == "SDSACore":  # lowered SDSA: AND / OR neurons and relays (native)
            nd = size
            d = add(n.name, 4 * nd + int(n.shape[-1]), None, srcs, in_size)
            entry.update(lava_process="stc.lava.processes.sdsa.build_sdsa",
                         execution="neurocore (AND / OR neurons + relays)")
            state[n.name] = ([d.name], None, size)
        elif op == "SpikeAttention":
            parts, entry = _attention(n, srcs, float(rates.get(n.name, DEFAULT_FIRING_RATE)))
            demands.extend(parts)
            state[n.name] = ([parts[-1].name], None, size)
        else:
            raise MappingError(f"node {n.name!r}: op {op} has no Loihi 2 mapping")
        procs.append(entry)
    if not demands:
        raise MappingError("graph has no spiking layer to place on Loihi 2")
    return demands, procs


def _attention(n, srcs: list[str], rate: float) -> tuple[list[LayerDemand], dict]:
    """Demands of one SpikeAttention node and its process entry.

    An estimate: q, k, v and proj are token-wise projections whose D x D kernel is stored
    whole on every core of the part (cores slice tokens); one LIF per token and channel per
    stage. A kernel larger than a core's memory raises MappingError from the allocator
    (real deployments would also tile by output channel, which is not modelled).
    """
    tokens, dim = (int(s) for s in n.shape)
    nd = tokens * dim

    def part(suffix, neurons, kernel, sources, kind="netx"):
        return LayerDemand(name=f"{n.name}.{suffix}", neurons=neurons, in_size=nd,
                           kernel_bytes=kernel, in_axons_full=False, halo=dim,
                           sources=sources, firing_rate=rate, kind=kind)

    q, k, v = (part(x, nd, dim * dim, srcs) for x in ("q", "k", "v"))
    qkv_names = [q.name, k.name, v.name]
    if n.kind == "sdsa":
        core = part("sdsa", 4 * nd + dim, 0, qkv_names)
        where = "neurocore (AND / OR neurons + relays)"
        lava_proc = "stc.lava.processes.sdsa.build_sdsa"
    else:
        core = part(n.kind, nd, 0, qkv_names, kind="host")
        where = "host / embedded x86 core (integer products, top-k)"
        lava_proc = ("stc.lava.processes.attention.SSAProcess" if n.kind == "ssa"
                     else "stc.lava.processes.attention.DSFormerProcess")
    attn_lif = part("attn_lif", nd, 0, [core.name])
    proj = part("proj", nd, dim * dim, [attn_lif.name])
    parts = [q, k, v, core, attn_lif, proj]
    return parts, {"node": n.name, "op": f"SpikeAttention:{n.kind}", "lava_process": lava_proc,
                   "execution": where, "parts": [p.name for p in parts]}


def plan_mapping(graph, chip_config: str = "ncl-1chip",
                 firing_rates: dict[str, float] | None = None):
    """Placement plan of any spiking graph (float or fixed) on ``chip_config``.

    Returns:
        ``stc.lava.mapping.LoihiMapping`` without a netx network (``executable`` False);
        its report gives cores, chips, per-core utilisation and inter-chip traffic.

    Raises:
        MappingError: unmappable ops, or a model too large for the chips (names the limit).
    """
    from .mapping import LoihiMapping
    from .resources import allocate

    try:
        graph.verify()
    except Exception as e:  # GraphError and friends
        raise MappingError(f"graph does not verify: {e}") from e
    demands, procs = plan_graph(graph, firing_rates)
    custom = [n.name for n in graph.nodes if n.OP in ("Add", "SpikeAttention",
                                                      "AttentionCore", "SDSACore", "ToTokens")]
    floats = [n.name for n in graph.nodes if n.OP in ("LIF", "IF", "CubaLIF", "BatchNorm")]
    return LoihiMapping(network=None, netx_bytes=None, allocation=allocate(demands, chip_config),
                        chip_config=chip_config, processes=procs, custom_nodes=custom,
                        float_nodes=floats)
