"""Energy per inference of a compiled graph or a bundle on given input (estimates, with sources).

The layer records of ``stc.energy.records`` are built from an IR graph and one run of it with
spike recording (``stc.runtime``), instead of from an nn.Module: this is what ``stc energy
BUNDLE`` and ``CompiledModel.energy_per_inference`` report.

Counting rules (stated assumptions, per sample and timestep):

- Linear / Conv2d: FLOPs = (weight elements / output channels) x output elements, i.e.
  in_features x out_features (x tokens) and k_h k_w C_in/groups x C_out x H_out x W_out. The
  input firing rate is that of the nearest spiking producer (through Flatten, Pool, BatchNorm,
  Scale, ToTokens); a layer fed (through those) by the graph input is the encoding layer
  (MACs, reference/energy.md).
- SpikeAttention: its q/k/v/proj Linear layers (weights x tokens each, at the input's rate)
  plus the attention products; AttentionCore: the products 2 x N x D x d (Q K^T V per head,
  d = D / heads) at the mean firing rate of q, k and v.
- neurons: the elements of every spiking node (``out_firing_rate`` = its measured rate).

Sources: the Spikformer appendix formula (Zhou et al., ICLR 2023) and Horowitz (ISSCC 2014)
for the 45 nm figures (``stc.energy.formula``); Davies et al. (IEEE Micro 2018, Table 2) for the
Loihi 1 per-operation estimate and the Hala Point figures (Intel 2024) for the Loihi 2 range
(``stc.energy.loihi``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .formula import paper_energy
from .loihi import counts_from_records, estimate_loihi_energy
from .records import LayerRecord

_PASS = ("Flatten", "Pool2d", "BatchNorm", "Scale", "ToTokens", "Repeat", "Output")


@dataclass(frozen=True)
class NeuronRecord(LayerRecord):
    """A "neuron" LayerRecord that also carries the measured ``out_firing_rate``."""

    out_firing_rate: float = 0.0


@dataclass
class EnergyReport:
    """Energy per inference (one sample), all estimates.

    Attributes:
        paper_nj: the papers' 45 nm MAC/AC formula (fp32), nJ.
        loihi1_nj: Loihi 1 per-op estimate, nJ.
        loihi2_nj: (low, high) Loihi 2 range from Hala Point figures, nJ.
        sources: citation per figure. records: the per-layer records used.
        firing_rates: measured firing rate per spiking node. note: what was not counted.
    """

    paper_nj: float
    loihi1_nj: float
    loihi2_nj: tuple[float, float]
    sources: dict[str, list[str]]
    records: list = field(repr=False, default_factory=list)
    firing_rates: dict[str, float] = field(default_factory=dict)
    cores: int | None = None
    chips: int | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return {"kind": "estimate", "unit": "nJ per inference (one sample)",
                "paper_formula_45nm_fp32": self.paper_nj, "loihi1": self.loihi1_nj,
                "loihi2_range": list(self.loihi2_nj), "cores": self.cores,
                "chips": self.chips, "sources": self.sources,
                "firing_rates": self.firing_rates, "note": self.note,
                "layers": [{"name": r.name, "kind": r.kind, "flops": r.flops,
                            "in_firing_rate": r.in_firing_rate,
                            "encoding": r.is_encoding_layer} for r in self.records]}


def _rate_source(graph, name: str, nodes: dict) -> str | None:
    """Name of the nearest spiking producer of ``name``'s input; None if it is the input."""
    cur = nodes[name].inputs[0] if nodes[name].inputs else None
    while cur is not None:
        n = nodes[cur]
        if n.SPIKING:
            return cur
        if n.OP == "Input":
            return None
        if n.OP not in _PASS or not n.inputs:
            return cur  # a non-spiking value (Add of spikes, AttentionCore): rate of it
        cur = n.inputs[0]
    return None


def graph_records(graph, spike_rates: dict[str, float], value_rates: dict[str, float],
                  T: int) -> list:
    """Per-sample layer records of ``graph`` from measured rates.

    Args:
        graph: stc.ir.Graph (float or fixed).
        spike_rates: spiking node name -> firing rate in [0, 1].
        value_rates: any node name -> fraction of nonzero elements (for non-spiking
            producers such as Add or AttentionCore), in [0, 1].
        T: timesteps.

    Returns:
        list of LayerRecord / NeuronRecord (stc.energy.records contract).
    """
    nodes = {n.name: n for n in graph.nodes}
    recs: list = []

    def rate_of(src):
        if src is None:
            return 1.0
        return float(min(1.0, spike_rates.get(src, value_rates.get(src, 1.0))))

    for n in graph.nodes:
        if n.OP in ("Linear", "Conv2d"):
            w = graph.tensors[n.params["weight"]]
            flops = (w.numel() / w.shape[0]) * math.prod(n.shape)
            src = _rate_source(graph, n.name, nodes)
            recs.append(LayerRecord(n.name, "fc" if n.OP == "Linear" else "conv", float(flops),
                                    rate_of(src), T, is_encoding_layer=src is None))
        elif n.OP == "SpikeAttention":
            tokens = n.shape[0] if len(n.shape) == 2 else 1
            src = _rate_source(graph, n.name, nodes)
            lin = sum(graph.tensors[t].numel() for slot, t in n.params.items()
                      if slot.endswith("linear.weight"))
            recs.append(LayerRecord(f"{n.name}.linears", "fc", float(lin * tokens),
                                    rate_of(src), T, is_encoding_layer=src is None))
            D = n.dim or n.shape[-1]
            recs.append(LayerRecord(f"{n.name}.products", "attention",
                                    float(2 * tokens * D * (D // max(1, n.num_heads))),
                                    spike_rates.get(n.name, 1.0), T))
        elif n.OP == "AttentionCore":
            N, D = (n.shape if len(n.shape) == 2 else (1, n.shape[-1]))
            fr = np.mean([rate_of(s) for s in n.inputs])
            recs.append(LayerRecord(n.name, "attention", float(2 * N * D * (D // n.num_heads)),
                                    float(fr), T))
        if n.SPIKING:
            recs.append(NeuronRecord(n.name, "neuron", float(math.prod(n.shape)), 1.0, T,
                                     out_firing_rate=float(spike_rates.get(n.name, 0.0))))
    return recs


def measure_rates(graph, x, *, numerics: str = "float", time_steps: int | None = None):
    """Run ``graph`` on batch-first ``x`` on the CPU and return (T, spike rates, value rates).

    Rates are fractions of nonzero elements over T, batch and neurons.
    """
    from stc.runtime.interpreter import execute

    inp = graph.inputs()[0]
    t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    if inp.temporal:
        t = t.transpose(0, 1).contiguous()
    with torch.no_grad():
        res = execute(graph.copy(), {inp.name: t}, numerics=numerics, kernel_backend="torch",
                      time_steps=time_steps, record_spikes=True)
    spikes = {k: float((v != 0).float().mean()) for k, v in res.spike_trains.items()}
    T = next((v.shape[0] for v in res.spike_trains.values()), time_steps or 1)
    return int(T), spikes, {}


def estimate_graph_energy(graph, x, *, numerics: str = "float", mapping_report: dict | None =
                          None, time_steps: int | None = None) -> EnergyReport:
    """Energy per inference (one sample) of ``graph`` on the batch ``x`` (rates averaged).

    Args:
        graph: stc.ir.Graph. x: batch-first input [B, *shape] (or [B, T, *shape]).
        numerics: "float" | "fixed" (the graph's numerics when running it).
        mapping_report: a Loihi mapping report (cores/chips used), e.g. a bundle's
            loihi/mapping.json "report".

    Returns:
        EnergyReport (nJ, estimates, with sources).

    Raises:
        ValueError: bad input shape (from the runtime).
    """
    T, spikes, values = measure_rates(graph, x, numerics=numerics, time_steps=time_steps)
    recs = graph_records(graph, spikes, values, T)
    if not any(r.kind != "neuron" for r in recs):
        raise ValueError("the graph has no Linear/Conv2d/attention layer to count")
    paper = paper_energy(recs, precision="fp32")
    counts = counts_from_records(recs, mapping=mapping_report)
    l1 = estimate_loihi_energy(counts, chip="loihi1")
    l2 = estimate_loihi_energy(counts, chip="loihi2")
    note = ("estimates from counted operations, not measurements; the Loihi 1 figure charges "
            "every neuron update as active (an upper bound) and no static power")
    return EnergyReport(
        paper_nj=paper.total_pj / 1e3, loihi1_nj=l1.total_pj / 1e3,
        loihi2_nj=(l2.low_pj / 1e3, l2.total_pj / 1e3),
        sources={"paper_formula": list(paper.sources), "loihi1": list(l1.sources),
                 "loihi2": list(l2.sources)},
        records=recs, firing_rates=spikes, cores=counts.cores, chips=counts.chips, note=note)
