"""Loihi 2 placement plan for graphs that netx alone cannot express (transformers, residuals).

A spiking transformer graph holds ``SpikeAttention`` and ``Add`` nodes. This module turns any
fixed-point graph into per-node resource demands and execution sites, so that
``stc.lava.mapping.map_graph`` can allocate cores and report chips, utilisation and traffic
for it, and the bundle's ``loihi/mapping.json`` names the Lava process of every node:

* ``Linear`` / ``Conv2d`` + ``LoihiCubaLIF``: neurocore layer (a token-wise Linear on [N, D]
  stores its [out, in] weights once per core, like a 1x1 conv kernel).
* ``Pool2d`` after spikes: OR / sum neurons on a neurocore (depthwise ones kernel).
* ``Add``: no neurons; both branches' spikes reach the consumer's dendrites, aligned by
  axon delays (``stc.lava.processes.add.DelayedAdd`` in simulation).
* ``SpikeAttention``: its q, k, v and output projections (+ LIF) are neurocore layers; the
  attention core is neurons for SDSA (``stc.lava.processes.sdsa``: 2ND AND + D OR + 2ND
  relays) and a host / embedded-core process for SSA and DSFormer
  (``stc.lava.processes.attention``), whose products and top-k need multiplications.
* ``Input``, ``Repeat``, ``Flatten``, ``TokenMean``, ``TimeMean``, ``Output``: host I/O or
  port reshapes, no cores.

Anything else (float neurons, BatchNorm, Scale, average pooling) raises MappingError.
"""

from __future__ import annotations

import numpy as np

from stc.errors import MappingError

from .resources import DEFAULT_FIRING_RATE, LayerDemand

_FREE = {"Input": "host (spike source)", "Repeat": "host (direct encoding)",
         "Flatten": "port reshape", "TokenMean": "host (readout)",
         "TimeMean": "host (readout)", "Output": "host (spike sink)"}


def _shape_of(graph, name):
    return tuple(int(s) for s in graph.node(name).shape)


def plan_graph(graph, firing_rates: dict[str, float] | None = None):
    """(demands, processes) for a fixed-point graph with custom-process nodes.

    Returns:
        demands: list of ``resources.LayerDemand`` (host parts have kind "host");
        processes: JSON-ready list of {"node", "op", "lava_process", "execution"}.

    Raises:
        MappingError: nodes with no Loihi form, naming them and why.
    """
    from .mapping import unmappable_reason

    rates = firing_rates or {}
    bad = [n for n in graph.nodes if n.OP in ("LIF", "IF", "CubaLIF", "BatchNorm", "Scale")
           or (n.OP == "Pool2d" and n.kind == "avg")]
    if bad:
        raise MappingError("cannot map these nodes to Loihi 2: " + "; ".join(
            f"{n.name!r} ({n.OP}): " + ("average pooling has no fixed form; use sum"
                                        if n.OP == "Pool2d" else unmappable_reason(n))
            for n in bad))
    demands: list[LayerDemand] = []
    procs: list[dict] = []
    # the core-holding layer that produces each node's spikes (for traffic estimates)
    source_of: dict[str, list[str]] = {}
    for n in graph.nodes:
        op = n.OP
        srcs = sorted({s for i in n.inputs for s in source_of.get(i, [])})
        if op in _FREE:
            procs.append({"node": n.name, "op": op, "lava_process": "-",
                          "execution": _FREE[op]})
            source_of[n.name] = srcs
        elif op in ("Linear", "Conv2d"):
            procs.append({"node": n.name, "op": op, "lava_process": "Dense/Conv synapses",
                          "execution": "neurocore (with its LoihiCubaLIF)"})
            source_of[n.name] = srcs
        elif op == "LoihiCubaLIF":
            syn = graph.node(n.inputs[0])
            neurons = int(np.prod(n.shape))
            if syn.OP == "Linear":
                in_shape = _shape_of(graph, syn.inputs[0])
                w = syn.in_features * syn.out_features
                d = LayerDemand(name=n.name, neurons=neurons, in_size=int(np.prod(in_shape)))
                if len(in_shape) == 1:  # plain dense: every neuron its own fan-in row
                    d.fan_in = syn.in_features
                else:  # token-wise: the weight matrix is shared across tokens
                    d.kernel_bytes, d.in_axons_full, d.halo = w, False, syn.in_features
            elif syn.OP == "Conv2d":
                in_shape = _shape_of(graph, syn.inputs[0])
                kh, kw = syn.kernel_size
                d = LayerDemand(name=n.name, neurons=neurons, in_size=int(np.prod(in_shape)),
                                kernel_bytes=syn.out_channels * (syn.in_channels // syn.groups)
                                * kh * kw, in_axons_full=False,
                                halo=int(in_shape[0] * (kh + 1) * in_shape[-1]))
            elif syn.OP == "Pool2d":
                in_shape = _shape_of(graph, syn.inputs[0])
                d = LayerDemand(name=n.name, neurons=neurons, in_size=int(np.prod(in_shape)),
                                kernel_bytes=int(np.prod(syn.kernel_size)), in_axons_full=False,
                                halo=int(in_shape[0] * (syn.kernel_size[0] + 1) * in_shape[-1]))
            else:
                raise MappingError(f"node {n.name!r}: LoihiCubaLIF must follow Linear, Conv2d "
                                   f"or sum Pool2d, not {syn.OP}")
            d.sources = srcs
            d.firing_rate = float(rates.get(n.name, DEFAULT_FIRING_RATE))
            demands.append(d)
            procs.append({"node": n.name, "op": op, "lava_process": "lava.proc.lif LIF",
                          "execution": "neurocore"})
            source_of[n.name] = [n.name]
        elif op == "Pool2d":
            if any(graph.node(c.name).OP == "LoihiCubaLIF" for c in graph.consumers(n.name)):
                procs.append({"node": n.name, "op": op, "lava_process": "sum-pool synapses",
                              "execution": "neurocore (with its LoihiCubaLIF)"})
                source_of[n.name] = srcs
                continue
            in_shape = _shape_of(graph, n.inputs[0])
            d = LayerDemand(name=n.name, neurons=int(np.prod(n.shape)),
                            in_size=int(np.prod(in_shape)),
                            kernel_bytes=int(np.prod(n.kernel_size)), in_axons_full=False,
                            halo=int(in_shape[0] * (n.kernel_size[0] + 1) * in_shape[-1]),
                            sources=srcs, firing_rate=DEFAULT_FIRING_RATE)
            demands.append(d)
            procs.append({"node": n.name, "op": op, "lava_process": "OR neurons (max pool)",
                          "execution": "neurocore"})
            source_of[n.name] = [n.name]
        elif op == "Add":
            procs.append({"node": n.name, "op": op,
                          "lava_process": "stc.lava.processes.add.DelayedAdd",
                          "execution": "consumer dendrites (axon delays align branches)"})
            source_of[n.name] = srcs
        elif op == "SpikeAttention":
            parts, proc = _attention(n, srcs, float(rates.get(n.name, DEFAULT_FIRING_RATE)))
            demands += parts
            procs.append(proc)
            source_of[n.name] = [parts[-1].name]
        else:
            raise MappingError(f"node {n.name!r}: op {op} has no Loihi 2 mapping")
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
