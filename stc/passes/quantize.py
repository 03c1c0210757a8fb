"""Quantisation to Loihi 2 fixed point (netx conventions, shared/reference/lava.md).

Each synapse layer (Conv2d/Linear) must feed exactly one float neuron (LIF with hard reset to
0, or IF with hard reset to 0); BatchNorm must be folded first (stc.passes.bn_fold).
For a layer with effective float weights w (LIF with decay_input: W / tau, since
H = V (1 - 1/tau) + X / tau; otherwise W), the pass picks a per-layer exponent e, the
largest integer with max|w| * 2^e <= 254, and sets
    W_int = clip(round(w * 2^e / 2) * 2, -256, 254)   (8-bit mantissa, even: mixed sign)
    bias_int = round(b_eff * 2^e)   (LoihiCubaLIF bias, added to v with bias_exp 6)
    v_th_mant = round(v_th * 2^e),  v_decay = round(4096 / tau) (LIF) or 0 (IF),
    i_decay = 4096 (the current does not persist: u = a each step, as X in the float LIF)
so weights, bias and threshold share one integer unit per layer (netx: W and vThMant share
units). Float neurons fire at H >= v_th, Loihi at v > th: ties and rounding make the two differ
slightly; :class:`QuantReport` measures it. Timing is the runtime's delay-free fixed mode
(stc.runtime.interpreter): each layer starts from rest when its input arrives, so a bias never
acts early (Lava's staggered netx reset gives the same, stc.lava.executor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from stc.errors import MappingError
from stc.ir import Graph, LoihiCubaLIF
from stc.ir.nodes import NEURON_OPS

MAX_VTH_MANT = (1 << 17) - 1
MAX_BIAS = 1 << 17


@dataclass
class QuantReport:
    """Error introduced by quantisation.

    layers: per synapse layer {"name", "exponent", "weight_rel_error" (||W_deq - W|| / ||W||),
    "weight_max_abs_error" (float units), "clipped_fraction", "v_th_mant", "v_decay"}; per
    attention core {"name", "neuron", "exponent", "gain", "v_th_mant", "v_decay"}.
    lowered_attention: SpikeAttention nodes lowered first; host_readout: nodes left in float
    on the host (no neuron downstream).
    spike_agreement: per neuron, the fraction of (t, b, neuron) entries where fixed and float
    spikes agree on the probe;
    overall_agreement: over all neurons; output_agreement: fraction of probe samples whose
    argmax output class is the same.
    """

    layers: list[dict] = field(default_factory=list)
    lowered_attention: list[str] = field(default_factory=list)
    host_readout: list[str] = field(default_factory=list)
    spike_agreement: dict[str, float] = field(default_factory=dict)
    overall_agreement: float | None = None
    output_agreement: float | None = None

    def to_dict(self) -> dict:
        return {"layers": self.layers, "lowered_attention": self.lowered_attention,
                "host_readout": self.host_readout, "spike_agreement": self.spike_agreement,
                "overall_agreement": self.overall_agreement,
                "output_agreement": self.output_agreement}


def _exponent(wmax: float, v_th: float, bmax: float) -> int:
    """Largest e with max|w| 2^e <= 254, v_th 2^e <= 2^17 - 1 (Lava's unsigned 17-bit vth)
    and max|b| 2^e < 2^17 (so that bias << 6 stays well inside the 24-bit state)."""
    e = 30 if wmax == 0 else math.floor(math.log2(254.0 / wmax))
    while e > -30 and (abs(v_th) * 2.0 ** e > MAX_VTH_MANT or bmax * 2.0 ** e >= MAX_BIAS):
        e -= 1
    return e


def _host_readout(g: Graph) -> set[str]:
    """Names of the host readout: nodes with no neuron downstream from the first TokenMean /
    Linear / Conv2d / TimeMean / Output on (a classifier head, the rate readout); they read
    integer spike counts and run in float on the host."""
    below: dict[str, bool] = {}
    for n in reversed(g.nodes):
        below[n.name] = any(c.OP in NEURON_OPS or below[c.name] for c in g.consumers(n.name))
    host: set[str] = set()
    for n in g.nodes:  # integer ops (Add, ToTokens, ...) stay on chip until a host op
        if not below[n.name] and n.OP not in NEURON_OPS and (
                n.OP in ("TokenMean", "Linear", "Conv2d", "TimeMean", "Output")
                or any(s in host for s in n.inputs)):
            host.add(n.name)
    return host



def _core_unit(scale: float, tau: float) -> tuple[int, int]:
    """(exponent e, integer gain) for a LIF reading an AttentionCore's O * scale: the unit of
    v is 2^-e with gain = scale / tau * 2^e. The smallest e making it an exact integer when
    scale / tau is a power of two (0.125 / 2 -> e = 4, gain 1), else the largest e with
    gain <= 254 (rounded)."""
    w = scale / tau
    for e in range(-8, 31):
        gain = w * 2.0 ** e
        if gain >= 1 and gain == int(gain):
            return e, int(gain)
    e = math.floor(math.log2(254.0 / w))
    return e, max(1, int(round(w * 2.0 ** e)))


def quantize(graph: Graph, *, probe: torch.Tensor | None = None,
             time_steps: int | None = None, seed: int = 0) -> tuple[Graph, QuantReport]:
    """Return (fixed-point graph, report). The input graph is not modified.

    SSA / DSFormer ``SpikeAttention`` nodes are first lowered (stc.passes.lower_attention)
    and the BatchNorms then exposed folded (stc.passes.bn_fold). The LIF after an
    ``AttentionCore`` (v_th 0.5 on O * scale) gets the unit 2^-e of :func:`_core_unit`
    (the core emits O * gain) and a bias of 1 with bias_exp 0: with integer O >= 0 and at most
    6 decays between resets (T <= 7), Loihi's v > th then equals float's H >= v_th exactly
    (the float membrane is a multiple of 2 in that unit, the bias keeps it 1 above it and
    Loihi's truncating decay drops the half). Nodes with no neuron downstream (TokenMean,
    the classifier Linear, TimeMean) are the host readout: they keep float weights and read
    the integer spike counts (the runtime's fixed mode and stc.lava compute them on the host).

    Args:
        graph: float graph with BatchNorm folded (attention BatchNorms are folded here).
        probe: batch-first input for the spike-agreement check ([B, *shape] static or
            [B, T, *shape] temporal) of integer values (spikes); default: 8 Bernoulli(0.3)
            spike samples drawn with ``seed``.
        time_steps: T for the probe run (default the graph's).

    Raises:
        MappingError: a node with no fixed form (BatchNorm left, soft reset, v_reset != 0,
            CubaLIF, SDSA or graded attention, TokenMean before a neuron), or a synapse layer
            not followed by exactly one neuron (outside the host readout).
    """
    from .bn_fold import fold_batchnorm
    from .lower_attention import lower_attention

    if any(n.OP == "SpikeAttention" and n.kind == "sdsa" for n in graph.nodes):
        from .quantize_residual import quantize_residual  # SDT: one unit per membrane stream

        return quantize_residual(graph, probe=probe, time_steps=time_steps, seed=seed)
    lowered: list[str] = []
    if any(n.OP == "SpikeAttention" for n in graph.nodes):
        graph, lowered = lower_attention(graph)
        graph, _ = fold_batchnorm(graph)
    g = graph.copy()
    host = _host_readout(g)
    problems = []
    for n in g.nodes:
        if n.OP in ("BatchNorm", "CubaLIF", "Scale") or (
                n.OP == "Pool2d" and n.kind == "avg") or (
                n.OP == "TokenMean" and n.name not in host):
            problems.append(f"{n.name} ({n.OP}{'/avg' if n.OP == 'Pool2d' else ''})")
        if n.OP in ("LIF", "IF") and n.v_reset != 0.0:
            problems.append(f"{n.name} ({n.OP} with v_reset={n.v_reset}; Loihi resets to 0)")
    if problems:
        raise MappingError("nodes with no Loihi fixed-point form (fold BatchNorm first; "
                           "use hard reset to 0, sum pooling; token means only in the "
                           "readout): " + ", ".join(problems))
    report = QuantReport(lowered_attention=lowered, host_readout=sorted(host))
    for syn in [n for n in g.nodes if n.OP in ("Conv2d", "Linear") and n.name not in host]:
        cons = g.consumers(syn.name)
        if len(cons) != 1 or cons[0].OP not in ("LIF", "IF"):
            raise MappingError(f"synapse layer {syn.name!r} must feed exactly one LIF/IF "
                               f"neuron for fixed point; it feeds {[c.name for c in cons]}")
        neu = cons[0]
        div = neu.tau if neu.OP == "LIF" and neu.decay_input else 1.0
        w = g.param(syn, "weight").double() / div
        b = g.param(syn, "bias")
        b = None if b is None else b.double() / div
        e = _exponent(float(w.abs().max()), neu.v_th,
                      0.0 if b is None else float(b.abs().max()))
        raw = torch.round(w * 2.0 ** e / 2) * 2
        w_int = raw.clamp(-256, 254)
        deq = w_int / 2.0 ** e
        v_th_mant = int(round(neu.v_th * 2.0 ** e))
        v_decay = int(round(4096 / neu.tau)) if neu.OP == "LIF" else 0
        report.layers.append({
            "name": syn.name, "neuron": neu.name, "exponent": -e,
            "weight_rel_error": float((deq - w).norm() / w.norm().clamp_min(1e-30)),
            "weight_max_abs_error": float(((deq - w) * div).abs().max()),
            "clipped_fraction": float((raw != w_int).double().mean()),
            "v_th_mant": v_th_mant, "v_decay": v_decay})
        g.tensors[f"{syn.name}.weight"] = w_int.to(torch.int32)
        syn.params = {"weight": f"{syn.name}.weight"}
        fixed = LoihiCubaLIF(name=neu.name, inputs=list(neu.inputs), shape=neu.shape,
                             i_decay=4096, v_decay=min(4096, v_decay), v_th_mant=v_th_mant)
        if b is not None:
            b_int = torch.round(b * 2.0 ** e).to(torch.int32)
            if syn.OP == "Conv2d":  # per output channel: axis 0 of [C, H, W]
                b_int = b_int.reshape(-1, *([1] * (len(neu.shape) - 1)))
            g.tensors[f"{neu.name}.bias"] = b_int.expand(neu.shape).contiguous()
            fixed.params["bias"] = f"{neu.name}.bias"
        g.nodes[g.nodes.index(neu)] = fixed
    for core in [n for n in g.nodes if n.OP == "AttentionCore"]:
        cons = g.consumers(core.name)
        if len(cons) != 1 or cons[0].OP != "LIF" or not cons[0].decay_input:
            raise MappingError(f"attention core {core.name!r} must feed exactly one LIF "
                               f"(decay_input) for fixed point; it feeds "
                               f"{[c.name for c in cons]}")
        neu = cons[0]
        e, core.gain = _core_unit(core.scale, neu.tau)
        v_th_mant = int(round(neu.v_th * 2.0 ** e))
        v_decay = int(round(4096 / neu.tau))
        report.layers.append({"name": core.name, "neuron": neu.name, "exponent": -e,
                              "gain": core.gain, "v_th_mant": v_th_mant, "v_decay": v_decay})
        fixed = LoihiCubaLIF(name=neu.name, inputs=list(neu.inputs), shape=neu.shape,
                             i_decay=4096, v_decay=v_decay, v_th_mant=v_th_mant, bias_exp=0)
        g.tensors[f"{neu.name}.bias"] = torch.ones(neu.shape, dtype=torch.int32)
        fixed.params["bias"] = f"{neu.name}.bias"
        g.nodes[g.nodes.index(neu)] = fixed
    left = [n for n in g.nodes if n.OP in ("LIF", "IF")]
    if left:
        raise MappingError("neurons with no synapse layer or attention core before them "
                           "have no fixed-point form: " + ", ".join(
                               f"{n.name!r} (fed by {n.inputs})" for n in left))
    g.prune_tensors()
    g.metadata = {**g.metadata, "numerics": "fixed"}
    g.verify()
    _agreement(graph, g, report, probe, time_steps, seed)
    return g, report


def _agreement(fg: Graph, qg: Graph, report: QuantReport, probe, time_steps, seed) -> None:
    from stc.runtime.interpreter import execute

    inp = fg.inputs()[0]
    if probe is None:
        gen = torch.Generator().manual_seed(seed)
        T = time_steps or next((n.time_steps for n in fg.nodes if n.OP == "Repeat"), 4)
        shape = (8, T, *inp.shape) if inp.temporal else (8, *inp.shape)
        probe = (torch.rand(shape, generator=gen) < 0.3).float()
    x = torch.as_tensor(probe, dtype=torch.float32)
    if inp.temporal:
        x = x.transpose(0, 1).contiguous()
    with torch.no_grad():
        rf = execute(fg, {inp.name: x}, numerics="float", time_steps=time_steps,
                     record_spikes=True)
        rq = execute(qg, {inp.name: x}, numerics="fixed", time_steps=time_steps,
                     record_spikes=True)
    agree = total = 0
    for name, sf in rf.spike_trains.items():
        sq = rq.spike_trains[name].to(sf.dtype)
        eq = (sq == sf).sum().item()
        report.spike_agreement[name] = eq / sf.numel()
        agree += eq
        total += sf.numel()
    report.overall_agreement = agree / total if total else None
    for name, yf in rf.outputs.items():
        yq = rq.outputs[name]
        if yf.dim() >= 2 and yf.shape == yq.shape:
            report.output_agreement = float((yf.argmax(-1) == yq.argmax(-1)).float().mean())
