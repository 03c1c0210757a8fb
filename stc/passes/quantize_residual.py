"""Fixed point for membrane-shortcut networks (Spike-driven Transformer): one unit per stream.

In SDT (Yao et al., NeurIPS 2023) the residual stream carries membrane (pre-spike) values:
terms ``BN(Conv/Linear(spikes))`` are added (``Add``), max-pooled and re-tokenised, and LIFs
read the sums (the membrane shortcut). Fixed point needs every value on the stream in one
integer unit 2^-e, shared by all terms and all LIFs reading it:

    term layer (a synapse layer feeding the stream, BN folded):
        W_int = clip(round(W 2^e / 2) 2, -256, 254)   (8-bit even mantissa, Loihi Dense)
        b_int = round(b 2^e)                            (the layer's integer bias)
    stream reader (LIF with tau, v_th, hard reset 0; H = V (1 - 1/tau) + X / tau):
        LoihiCubaLIF(i_decay 4096, v_decay round(4096 / tau), v_th_mant round(v_th tau 2^e))
        reading a = X_int directly (v = tau 2^e V; without decay_input v_th_mant = v_th 2^e)

with e the largest exponent that keeps every term's weights within 8 bits, every bias within
2^17 and every reader's threshold within Lava's 17 bits. Layers whose only consumer is one
LIF are quantised per layer as stc.passes.quantize does (W / tau, own exponent, bias in the
neuron). SDSA cores (stc.ir.SDSACore) are exact on binary spikes and need no unit.
The classifier tail from the first ``TokenMean`` on (token mean, head LIF, head Linear, time
mean) is the host readout: it reads the integer stream, rescales it by 2^-e (a ``Scale``
node) and runs in float (the runtime's fixed mode and stc.lava run it on the host).
"""

from __future__ import annotations

import torch

from stc.errors import MappingError
from stc.ir import Graph, LoihiCubaLIF
from stc.ir import nodes as ir

from .quantize import (
    CALIBRATION_SEARCH_SAMPLES,
    MAX_VTH_MANT,
    QuantReport,
    _agreement,
    _calibration_tensor,
    _exponent,
    _first_synapses,
    _input_scale,
    _search,
    _set_layer,
)

SYNAPSES = ("Conv2d", "Linear")
STREAM_OPS = ("Add", "Pool2d", "ToTokens", "Flatten")


def _host_tail(g: Graph) -> set[str]:
    """The first TokenMean and everything downstream of it."""
    host: set[str] = set()
    for n in g.nodes:
        if n.OP == "TokenMean" or any(s in host for s in n.inputs):
            host.add(n.name)
    return host


def _classify(g: Graph, host: set[str]) -> tuple[list, list, list]:
    """(regular synapse layers, stream term layers, stream-reading LIFs), in graph order.

    Raises:
        MappingError: an Add or pool mixing spikes with membrane values, or a node with no
            fixed-point form on the stream.
    """
    membrane: set[str] = set()
    regular, terms, readers = [], [], []
    for n in g.nodes:
        if n.name in host:
            continue
        if n.OP in SYNAPSES:
            cons = g.consumers(n.name)
            if len(cons) == 1 and cons[0].OP in ("LIF", "IF") and cons[0].name not in host:
                regular.append(n)
            else:
                terms.append(n)
                membrane.add(n.name)
        elif n.OP in STREAM_OPS and any(s in membrane for s in n.inputs):
            if not all(s in membrane for s in n.inputs):
                raise MappingError(f"node {n.name!r} ({n.OP}) mixes membrane values with "
                                   f"spikes ({n.inputs}); the stream needs one unit")
            if n.OP == "Pool2d" and n.kind != "max":
                raise MappingError(f"node {n.name!r}: only max pooling keeps the stream "
                                   "integer")
            membrane.add(n.name)
        elif n.OP in ("LIF", "IF") and n.inputs[0] in membrane:
            readers.append(n)
    return regular, terms, readers


def _propagate_offsets(g: Graph, offsets: dict[str, torch.Tensor]) -> None:
    """Carry the term layers' biases along the stream (they are not applied by the term
    layers: Loihi's Dense has no bias): Add sums them, ToTokens / Flatten move them, and a
    max pool keeps them (a per-channel constant commutes with max).

    Raises:
        MappingError: a max pool over an offset that varies within a channel.
    """
    for n in g.nodes:
        if n.OP not in STREAM_OPS or not all(s in offsets for s in n.inputs):
            continue
        ins = [offsets[s] for s in n.inputs]
        if n.OP == "Add":
            offsets[n.name] = sum(ins[1:], ins[0].clone())
        elif n.OP == "ToTokens":
            offsets[n.name] = ins[0].flatten(-2).transpose(-1, -2).contiguous()
        elif n.OP == "Flatten":
            offsets[n.name] = ins[0].reshape(n.shape)
        else:  # max pool
            o = ins[0]
            per_channel = o[:, :1, :1]
            if not torch.equal(o, per_channel.expand(o.shape)):
                raise MappingError(f"node {n.name!r}: max pooling needs a per-channel "
                                   "constant bias on the stream")
            offsets[n.name] = per_channel.expand(n.shape).clone()


def _neuron_check(n: ir.Node) -> None:
    if n.v_reset != 0.0:
        raise MappingError(f"{n.name} ({n.OP} with v_reset={n.v_reset}; Loihi resets to 0)")


def quantize_residual(graph: Graph, *, calibration=None, labels=None,
                      input_scale: float | None = None,
                      time_steps: int | None = None) -> tuple[Graph, QuantReport]:
    """Return (fixed-point graph, report) for a graph with a membrane-shortcut stream (SDT).
    The input graph is not modified.

    Args and report as :func:`stc.passes.quantize.quantize` (which calls this for SDSA
    attention); the report's layers add ``{"name": "stream", "exponent", "terms",
    "readers"}``.

    Raises:
        MappingError: BatchNorm left outside attention, soft reset or v_reset != 0, average
            pooling on the stream, an Add mixing spikes and membranes, a neuron with no
            synapse layer, stream or SDSA core before it.
    """
    if calibration is None:
        return _quantize_residual(graph, None, labels, input_scale, time_steps, 0)
    best = None
    for shift in STREAM_SHIFTS:  # the stream exponent, chosen on the calibration samples
        g, report = _quantize_residual(graph, calibration, labels, input_scale, time_steps,
                                       shift)
        key = (report.output_agreement or 0.0, report.overall_agreement or 0.0)
        if best is None or key > best[0]:
            best = (key, g, report, shift)
    _, g, report, shift = best
    report.calibrated["stream"] = {"exponent_shift": shift, "output_agreement": best[0][0]}
    return g, report


# Stream exponents tried with calibration data: the largest exponent at which every stream
# term's 8-bit weights fit (0), and one more (+1: the largest weights clip, the rest gain a
# bit), picked by output then spike agreement with the float graph.
STREAM_SHIFTS = (0, 1)


def _quantize_residual(graph: Graph, calibration, labels, input_scale, time_steps,
                       stream_shift: int) -> tuple[Graph, QuantReport]:
    from .bn_fold import fold_batchnorm
    from .lower_attention import lower_attention

    lowered: list[str] = []
    if any(n.OP == "SpikeAttention" for n in graph.nodes):
        graph, lowered = lower_attention(graph)
    graph, _ = fold_batchnorm(graph)
    g = graph.copy()
    host = _host_tail(g)
    left = [n.name for n in g.nodes if n.OP in ("BatchNorm", "CubaLIF")]
    if left:
        raise MappingError("nodes with no Loihi fixed-point form: " + ", ".join(left))
    regular, terms, readers = _classify(g, host)
    scale = _input_scale(g, input_scale)  # float input -> round(x * scale), as in quantize
    first = _first_synapses(g) if scale is not None else set()
    if first & {t.name for t in terms}:
        raise MappingError(f"the graph input feeds the residual stream directly "
                           f"({sorted(first & {t.name for t in terms})}); the input scale "
                           "can only be folded into a synapse layer that feeds a neuron")
    x = None if calibration is None else _calibration_tensor(g, calibration, labels)
    report = QuantReport(lowered_attention=lowered, host_readout=sorted(host),
                         input_scale=scale)

    def mult(neu) -> float:
        return neu.tau if neu.OP == "LIF" and neu.decay_input else 1.0

    # the stream unit
    e = 30
    for t in terms:
        w = g.param(t, "weight").double()
        b = g.param(t, "bias")
        e = min(e, _exponent(float(w.abs().max()), 0.0,
                             0.0 if b is None else float(b.abs().max())))
    e += stream_shift
    for r in readers:
        _neuron_check(r)
        while e > -30 and r.v_th * mult(r) * 2.0 ** e > MAX_VTH_MANT:
            e -= 1
    offsets: dict[str, torch.Tensor] = {}  # stream value -> its integer bias, per element
    for t in terms:
        w = g.param(t, "weight").double()
        b = g.param(t, "bias")
        raw = torch.round(w * 2.0 ** e / 2) * 2
        w_int = raw.clamp(-256, 254)
        g.tensors[f"{t.name}.weight"] = w_int.to(torch.int32)
        t.params = {"weight": f"{t.name}.weight"}
        b_int = torch.zeros(t.shape[0] if t.OP == "Conv2d" else t.shape[-1],
                            dtype=torch.float64)
        if b is not None:
            b_int = torch.round(b.double() * 2.0 ** e)
        offsets[t.name] = (b_int.reshape(-1, 1, 1) if t.OP == "Conv2d" else b_int).expand(
            t.shape).clone()
        report.layers.append({
            "name": t.name, "neuron": None, "exponent": -e, "stream": True,
            "weight_rel_error": float((w_int / 2.0 ** e - w).norm()
                                      / w.norm().clamp_min(1e-30)),
            "clipped_fraction": float((raw != w_int).double().mean())})
    _propagate_offsets(g, offsets)
    for r in readers:
        v_th_mant = int(round(r.v_th * mult(r) * 2.0 ** e))
        v_decay = int(round(4096 / r.tau)) if r.OP == "LIF" else 0
        fixed = LoihiCubaLIF(name=r.name, inputs=list(r.inputs), shape=r.shape, i_decay=4096,
                             v_decay=min(4096, v_decay), v_th_mant=v_th_mant)
        off = offsets[r.inputs[0]]
        if bool((off != 0).any()):  # the stream's biases: (a + b) << 6 = (a << 6) + (b << 6)
            g.tensors[f"{r.name}.bias"] = off.to(torch.int32).contiguous()
            fixed.params["bias"] = f"{r.name}.bias"
        g.nodes[g.nodes.index(r)] = fixed
        report.layers.append({"name": r.name, "neuron": r.name, "exponent": -e,
                              "stream_reader": True, "v_th_mant": v_th_mant,
                              "v_decay": v_decay})
    report.layers.append({"name": "stream", "exponent": -e,
                          "terms": [t.name for t in terms],
                          "readers": [r.name for r in readers]})
    layers, rows = [], {}  # the regular synapse layers, as stc.passes.quantize keeps them
    for syn in regular:
        neu = g.consumers(syn.name)[0]
        _neuron_check(neu)
        div = mult(neu)
        w = g.param(syn, "weight").double() / div
        if syn.name in first:
            w = w / scale
        b = g.param(syn, "bias")
        b = None if b is None else b.double() / div
        ex = _exponent(float(w.abs().max()), neu.v_th,
                       0.0 if b is None else float(b.abs().max()))
        layers.append((syn, neu, w, b, div, ex, neu.v_th))
        rows[syn.name] = _set_layer(g, syn, neu, w, b, div, ex, int(round(neu.v_th * 2.0 ** ex)))
    # host readout: rescale the integer stream where it leaves the chip
    for n in list(g.nodes):
        if n.name in host and any(s not in host for s in n.inputs):
            if n.OP != "TokenMean":
                raise MappingError(f"host node {n.name!r} reads the chip but is not a "
                                   "TokenMean")
            sc = ir.Scale(name=f"{n.name}.dequant", inputs=[n.name], shape=n.shape,
                          factor=2.0 ** -e)
            d = int(n.shape[-1])
            off = offsets[n.inputs[0]].mean(dim=-2) * 2.0 ** -e  # the stream's biases
            lin = ir.Linear(name=f"{n.name}.offset", inputs=[sc.name], shape=n.shape,
                            in_features=d, out_features=d,
                            params={"weight": f"{n.name}.offset.weight",
                                    "bias": f"{n.name}.offset.bias"})
            g.tensors[lin.params["weight"]] = torch.eye(d, dtype=torch.float32)
            g.tensors[lin.params["bias"]] = off.to(torch.float32)
            for c in g.consumers(n.name):
                if c.name != sc.name:
                    c.inputs = [lin.name if s == n.name else s for s in c.inputs]
            at = g.nodes.index(n) + 1
            g.nodes[at:at] = [sc, lin]
            host.update((sc.name, lin.name))
    bad = [n.name for n in g.nodes if n.OP in ("LIF", "IF") and n.name not in host]
    if bad:
        raise MappingError("neurons with no synapse layer, stream or SDSA core before them "
                           "have no fixed-point form: " + ", ".join(bad))
    g.prune_tensors()
    g.metadata = {**g.metadata, "numerics": "fixed"}
    if scale is not None:
        g.metadata["input_quant"] = {g.inputs()[0].name: {"scale": scale}}
    g.infer_shapes().verify()
    if x is not None:  # the same per-layer calibration search as stc.passes.quantize
        _search(graph, g, layers, rows, report, x[:CALIBRATION_SEARCH_SAMPLES], time_steps)
    stream_rows = [la for la in report.layers if la["name"] not in rows]
    report.layers = stream_rows + [rows[syn.name] for syn, *_ in layers]
    if x is not None:
        _agreement(graph, g, report, x, labels, time_steps)
    return g, report
