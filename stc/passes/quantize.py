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

Input quantisation: the fixed graph takes the float model's input. With an input scale s
(``input_scale=``, else from the graph's input contract, stc.runtime.contract: 1 / step
when the contract declares a step, e.g. 16 for digits in k/16, else 16 / max|range|), the
integer input the chip sees is round(x * s) (applied at the boundary by stc.runtime and
stc.lava, recorded as ``metadata["input_quant"]``), and the first synapse layers fed by the
input divide their float weights by s before quantising, so W x = (W / s)(x s).

Calibration (``calibration=``: real samples in the float model's input space, e.g. held-out
data): per synapse layer in order, the exponent (e_max or e_max + 1, which clips the largest
weights) and the threshold mantissa (round(v_th 2^e) + {-1, 0, +1}) that maximise that
layer's spike agreement with the float graph are chosen greedily (upstream layers already
fixed), on at most ``CALIBRATION_SEARCH_SAMPLES`` samples; the report then gives per-layer
spike agreement, output agreement and (with ``labels``) float and fixed accuracy on all
calibration samples. Without calibration data nothing is measured (no random probe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from stc.errors import MappingError
from stc.ir import Graph, LoihiCubaLIF
from stc.ir.nodes import NEURON_OPS

MAX_VTH_MANT = (1 << 17) - 1
MAX_BIAS = 1 << 17
CALIBRATION_SEARCH_SAMPLES = 64
INPUT_LEVELS = 16  # default integer input magnitude without a declared step
_PASS_THROUGH = ("Repeat", "Flatten", "Pool2d")  # ops the input scale passes unchanged


@dataclass
class QuantReport:
    """Error introduced by quantisation.

    layers: per synapse layer {"name", "exponent", "weight_rel_error" (||W_deq - W|| / ||W||),
    "weight_max_abs_error" (float units), "clipped_fraction", "v_th_mant", "v_decay"}; per
    attention core {"name", "neuron", "exponent", "gain", "v_th_mant", "v_decay"}.
    lowered_attention: SpikeAttention nodes lowered first; host_readout: nodes left in float
    on the host (no neuron downstream).
    spike_agreement: per neuron, the fraction of (t, b, neuron) entries where fixed and float
    spikes agree on the calibration samples;
    overall_agreement: over all neurons; output_agreement: fraction of calibration samples
    whose argmax output class is the same (None without calibration data).
    input_scale: the input quantisation (None: the graph takes integers as they are);
    samples: calibration samples measured; accuracy_float / accuracy_fixed: top-1 accuracy
    of the argmax output on them when labels were given; calibrated: per-layer choices made
    on the data (name -> {"exponent_shift", "v_th_delta"}).
    """

    layers: list[dict] = field(default_factory=list)
    lowered_attention: list[str] = field(default_factory=list)
    host_readout: list[str] = field(default_factory=list)
    spike_agreement: dict[str, float] = field(default_factory=dict)
    overall_agreement: float | None = None
    output_agreement: float | None = None
    input_scale: float | None = None
    samples: int = 0
    accuracy_float: float | None = None
    accuracy_fixed: float | None = None
    calibrated: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"layers": self.layers, "lowered_attention": self.lowered_attention,
                "host_readout": self.host_readout, "spike_agreement": self.spike_agreement,
                "overall_agreement": self.overall_agreement,
                "output_agreement": self.output_agreement, "input_scale": self.input_scale,
                "samples": self.samples, "accuracy_float": self.accuracy_float,
                "accuracy_fixed": self.accuracy_fixed, "calibrated": self.calibrated}


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


def _input_scale(graph: Graph, input_scale: float | None) -> float | None:
    """The input quantisation scale: ``input_scale``, else from the input contract (1/step,
    or INPUT_LEVELS / max|range|), else None (the graph takes integers as they are).

    Raises:
        MappingError: a contract range below 0 (Loihi graded input is non-negative), or a
            scale that is not a finite number > 0.
    """
    from stc.runtime.contract import contracts_of

    inp = graph.inputs()[0]
    c = contracts_of(graph).get(inp.name)
    if c is not None and c["range"][0] < 0:
        raise MappingError(f"input {inp.name!r} declares the range {c['range']}; Loihi's "
                           "graded input is non-negative: shift the data to [0, hi] in "
                           "training")
    if input_scale is None and c is not None:
        if c["step"] is not None:
            input_scale = 1.0 / c["step"]
        elif np.dtype(c["dtype"]).kind in "iub":
            input_scale = None  # integer input (spikes, counts): taken as is
        else:
            hi = max(abs(c["range"][0]), abs(c["range"][1]))
            input_scale = INPUT_LEVELS / hi if hi > 0 else None
    if input_scale is not None and not (math.isfinite(input_scale) and input_scale > 0):
        raise MappingError(f"input_scale must be a finite number > 0, got {input_scale}")
    return None if input_scale is None else float(input_scale)


def _first_synapses(g: Graph) -> set[str]:
    """Synapse layers (Linear/Conv2d) the graph input reaches through pass-through ops only
    (Repeat, Flatten, max/sum Pool2d): they receive round(x * s) and fold 1 / s.

    Raises:
        MappingError: the input reaches another op first (a neuron, Add, ...): the input
            scale cannot be folded there.
    """
    out: set[str] = set()
    stack = [g.inputs()[0].name]
    while stack:
        for c in g.consumers(stack.pop()):
            if c.OP in ("Linear", "Conv2d"):
                out.add(c.name)
            elif c.OP in _PASS_THROUGH:
                stack.append(c.name)
            else:
                raise MappingError(f"the graph input reaches {c.name!r} ({c.OP}) before any "
                                   "synapse layer; the input scale can only be folded into "
                                   "Linear/Conv2d weights (pass input_scale=None and feed "
                                   "integers)")
    return out


def _set_layer(g: Graph, syn, neu, w, b, div: float, e: int, v_th_mant: int) -> dict:
    """Write the integer weights / LoihiCubaLIF of one synapse layer at exponent e; returns
    its report row."""
    raw = torch.round(w * 2.0 ** e / 2) * 2
    w_int = raw.clamp(-256, 254)
    deq = w_int / 2.0 ** e
    v_decay = int(round(4096 / neu.tau)) if neu.OP == "LIF" else 0
    g.tensors[f"{syn.name}.weight"] = w_int.to(torch.int32)
    syn.params = {"weight": f"{syn.name}.weight"}
    fixed = LoihiCubaLIF(name=neu.name, inputs=list(neu.inputs), shape=neu.shape,
                         i_decay=4096, v_decay=min(4096, v_decay), v_th_mant=v_th_mant)
    g.tensors.pop(f"{neu.name}.bias", None)
    if b is not None:
        b_int = torch.round(b * 2.0 ** e).to(torch.int32)
        if syn.OP == "Conv2d":  # per output channel: axis 0 of [C, H, W]
            b_int = b_int.reshape(-1, *([1] * (len(neu.shape) - 1)))
        g.tensors[f"{neu.name}.bias"] = b_int.expand(neu.shape).contiguous()
        fixed.params["bias"] = f"{neu.name}.bias"
    idx = next(i for i, n in enumerate(g.nodes) if n.name == neu.name)
    g.nodes[idx] = fixed
    return {"name": syn.name, "neuron": neu.name, "exponent": -e,
            "weight_rel_error": float((deq - w).norm() / w.norm().clamp_min(1e-30)),
            "weight_max_abs_error": float(((deq - w) * div).abs().max()),
            "clipped_fraction": float((raw != w_int).double().mean()),
            "v_th_mant": v_th_mant, "v_decay": v_decay}


def quantize(graph: Graph, *, calibration: torch.Tensor | np.ndarray | None = None,
             labels: torch.Tensor | np.ndarray | None = None,
             input_scale: float | None = None, time_steps: int | None = None,
             probe: torch.Tensor | np.ndarray | None = None,
             search: bool = True) -> tuple[Graph, QuantReport]:
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
    Input quantisation and calibration: module docstring.

    Args:
        graph: float graph with BatchNorm folded (attention BatchNorms are folded here).
        calibration: real samples in the float model's input space, batch-first ([B, *shape]
            static or [B, T, *shape] temporal), e.g. held-out data; None: no measurement.
        labels: int class labels [B] for ``calibration`` (report accuracies).
        input_scale: float input -> integer input multiplier (default: from the contract).
        time_steps: T for the calibration runs (default the graph's).
        probe: older name of ``calibration`` (same meaning).
        search: choose exponents / thresholds on the calibration data (else only measure).

    Raises:
        MappingError: a node with no fixed form (BatchNorm left, soft reset, v_reset != 0,
            CubaLIF, SDSA or graded attention, TokenMean before a neuron), a synapse layer
            not followed by exactly one neuron (outside the host readout), an input scale
            that cannot be folded.
        ValueError: calibration / labels of the wrong shape or dtype.
    """
    from .bn_fold import fold_batchnorm
    from .lower_attention import lower_attention

    if calibration is None:
        calibration = probe
    if any(n.OP == "SpikeAttention" and n.kind == "sdsa" for n in graph.nodes):
        from .quantize_residual import quantize_residual  # SDT: one unit per membrane stream

        return quantize_residual(graph, calibration=calibration, labels=labels,
                                 input_scale=input_scale, time_steps=time_steps)
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
    scale = _input_scale(g, input_scale)
    first = _first_synapses(g) if scale is not None else set()
    x = None if calibration is None else _calibration_tensor(g, calibration, labels)
    report = QuantReport(lowered_attention=lowered, host_readout=sorted(host),
                         input_scale=scale)
    layers = []
    for syn in [n for n in g.nodes if n.OP in ("Conv2d", "Linear") and n.name not in host]:
        cons = g.consumers(syn.name)
        if len(cons) != 1 or cons[0].OP not in ("LIF", "IF"):
            raise MappingError(f"synapse layer {syn.name!r} must feed exactly one LIF/IF "
                               f"neuron for fixed point; it feeds {[c.name for c in cons]}")
        neu = cons[0]
        div = neu.tau if neu.OP == "LIF" and neu.decay_input else 1.0
        w = g.param(syn, "weight").double() / div
        if syn.name in first:
            w = w / scale
        b = g.param(syn, "bias")
        b = None if b is None else b.double() / div
        e = _exponent(float(w.abs().max()), neu.v_th,
                      0.0 if b is None else float(b.abs().max()))
        layers.append((syn, neu, w, b, div, e, neu.v_th))
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
    rows = {}
    for syn, neu, w, b, div, e, v_th in layers:  # default choice: e_max, rounded threshold
        rows[syn.name] = _set_layer(g, syn, neu, w, b, div, e, int(round(v_th * 2.0 ** e)))
    left = [n for n in g.nodes if n.OP in ("LIF", "IF")]
    if left:
        raise MappingError("neurons with no synapse layer or attention core before them "
                           "have no fixed-point form: " + ", ".join(
                               f"{n.name!r} (fed by {n.inputs})" for n in left))
    g.metadata = {**g.metadata, "numerics": "fixed"}
    if scale is not None:
        g.metadata["input_quant"] = {g.inputs()[0].name: {"scale": scale}}
    if x is not None and search:
        _search(graph, g, layers, rows, report, x[:CALIBRATION_SEARCH_SAMPLES], time_steps)
    report.layers = [rows[syn.name] for syn, *_ in layers] + report.layers
    g.prune_tensors()
    g.verify()
    if x is not None:
        _agreement(graph, g, report, x, labels, time_steps)
    return g, report


def _calibration_tensor(g: Graph, calibration, labels) -> torch.Tensor:
    """Calibration samples as a float tensor, T-first for a temporal input.

    Raises:
        ValueError: wrong shape or dtype of ``calibration``; ``labels`` not ints of length B.
    """
    inp = g.inputs()[0]
    a = calibration.numpy() if isinstance(calibration, torch.Tensor) else np.asarray(
        calibration)
    want = ("B, T, " if inp.temporal else "B, ") + ", ".join(map(str, inp.shape))
    if a.dtype.kind not in "fiub" or a.dtype.kind == "b":
        raise ValueError(f"calibration data must be a numeric array [{want}], got dtype "
                         f"{a.dtype}")
    lead = 2 if inp.temporal else 1
    if a.ndim != lead + len(inp.shape) or tuple(a.shape[lead:]) != tuple(inp.shape) \
            or a.shape[0] < 1:
        raise ValueError(f"calibration data must have shape [{want}] (batch first), got "
                         f"{list(a.shape)}")
    if not np.isfinite(a).all():
        raise ValueError("calibration data holds NaN or inf")
    if labels is not None:
        y = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if y.dtype.kind not in "iu" or y.ndim != 1 or len(y) != len(a):
            raise ValueError(f"labels must be integer class ids of shape [{len(a)}] (one per "
                             f"calibration sample), got dtype {y.dtype}, shape "
                             f"{list(y.shape)}")
    x = torch.as_tensor(a.astype(np.float32))
    return x


def _run(fg: Graph, qg: Graph, x: torch.Tensor, time_steps, fixed_only: bool = False):
    """(float RunResult or None, fixed RunResult) on batch-first ``x``, spikes recorded; the
    fixed run gets the boundary's input quantisation (stc.runtime.contract)."""
    from stc.runtime.contract import input_scales, quantize_input
    from stc.runtime.interpreter import execute

    inp = fg.inputs()[0]
    xt = x.transpose(0, 1).contiguous() if inp.temporal else x
    xq = torch.as_tensor(quantize_input(xt.numpy(), input_scales(qg).get(inp.name)))
    with torch.no_grad():
        rf = None if fixed_only else execute(fg, {inp.name: xt}, numerics="float",
                                             time_steps=time_steps, record_spikes=True)
        rq = execute(qg, {inp.name: xq.to(torch.float32)}, numerics="fixed",
                     time_steps=time_steps, record_spikes=True)
    return rf, rq


def _ancestors(g: Graph, name: str) -> Graph:
    """The sub-graph of ``name`` and everything it depends on (shares g's tensors), to run a
    calibration candidate only as far as the layer it changes."""
    need, stack = set(), [name]
    while stack:
        n = stack.pop()
        if n not in need:
            need.add(n)
            stack.extend(g.node(n).inputs)
    return Graph(nodes=[n for n in g.nodes if n.name in need], tensors=g.tensors,
                 metadata=g.metadata)


def _search(fg: Graph, g: Graph, layers, rows, report: QuantReport, x, time_steps) -> None:
    """Greedy per-layer choice of exponent shift {0, +1} and threshold delta {-1, 0, +1}
    maximising the layer's spike agreement with the float graph (module docstring); a
    layer that already agrees everywhere keeps the default."""
    rf, _ = _run(fg, g, x, time_steps)
    for syn, neu, w, b, div, e, v_th in layers:
        ref = rf.spike_trains[neu.name]
        best = None
        for de in (0, 1):
            ee = e + de
            if abs(v_th) * 2.0 ** ee > MAX_VTH_MANT or (
                    b is not None and float(b.abs().max()) * 2.0 ** ee >= MAX_BIAS):
                continue
            base = int(round(v_th * 2.0 ** ee))
            for dth in (0, -1, 1):
                if base + dth < 0 or (best is not None and best[0] >= 1.0):
                    continue
                _set_layer(g, syn, neu, w, b, div, ee, base + dth)
                _, rq = _run(fg, _ancestors(g, neu.name), x, time_steps, fixed_only=True)
                agree = float((rq.spike_trains[neu.name].to(ref.dtype) == ref).double().mean())
                if best is None or agree > best[0] + 1e-12:
                    best = (agree, ee, base + dth, de, dth)
        _, ee, th, de, dth = best
        rows[syn.name] = _set_layer(g, syn, neu, w, b, div, ee, th)
        report.calibrated[syn.name] = {"exponent_shift": de, "v_th_delta": dth,
                                       "spike_agreement": best[0]}


def _agreement(fg: Graph, qg: Graph, report: QuantReport, x, labels, time_steps) -> None:
    rf, rq = _run(fg, qg, x, time_steps)
    report.samples = int(x.shape[0])
    agree = total = 0
    for name, sf in rf.spike_trains.items():
        if name not in rq.spike_trains:
            continue
        sq = rq.spike_trains[name].to(sf.dtype)
        eq = (sq == sf).sum().item()
        report.spike_agreement[name] = eq / sf.numel()
        agree += eq
        total += sf.numel()
    report.overall_agreement = agree / total if total else None
    temporal = fg.temporal()
    for name, yf in rf.outputs.items():
        yq = rq.outputs[name]
        if temporal[name]:  # spike-train readout [T, B, K]: classes by spike count
            yf, yq = yf.sum(0), yq.sum(0)
        if yf.dim() == 2 and yf.shape == yq.shape:
            pf, pq = yf.argmax(-1), yq.to(yf.dtype).argmax(-1)
            report.output_agreement = float((pf == pq).float().mean())
            if labels is not None:
                y = torch.as_tensor(np.asarray(labels)).to(torch.int64)
                report.accuracy_float = float((pf == y).float().mean())
                report.accuracy_fixed = float((pq == y).float().mean())
        break
