"""The theoretical energy formula used by spiking-transformer papers (Spikformer, SDT).

    E = E_MAC * FL_enc (* T)  +  E_AC * SUM_l SOP(l),   SOP(l) = fr(l) * T * FLOPs(l)

over the conv, fc and attention layers l that are not the encoding layer. The encoding (first)
layer sees real-valued input and counts as MACs; neuron updates are not part of the formula.
Papers differ on whether the encoding term is multiplied by T (the encoding conv runs once per
timestep in Spikformer/SDT code, so stc's default multiplies by T); ``encoding_times_T`` states
the choice explicitly and every result records it.

Sources: Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm energies); SpikingJelly
``op_counter`` presets; Spikformer (Zhou et al., ICLR 2023) appendix; SDT (Yao et al., NeurIPS
2023). This is a model, not a measurement: it ignores memory access, which can erase the SNN's
advantage (arXiv 2505.11151; arXiv 2409.08290).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from stc.energy.records import check_records
from stc.errors import check_positive

PJ_PER_MJ = 1e9
"""1 mJ = 1e9 pJ."""


@dataclass(frozen=True)
class OpEnergy:
    """Energy per operation of one arithmetic precision, in pJ (45 nm CMOS)."""

    name: str
    e_mac_pj: float
    e_ac_pj: float
    source: str


_HOROWITZ = "Horowitz, ISSCC 2014 (45 nm); SpikingJelly op_counter presets"
PRESETS: dict[str, OpEnergy] = {
    "fp32": OpEnergy("fp32", 4.6, 0.9, _HOROWITZ),
    "fp16": OpEnergy("fp16", 1.5, 0.4, _HOROWITZ),
    "int8": OpEnergy("int8", 0.23, 0.03, _HOROWITZ),
}
"""MAC / AC energies per precision (pJ): fp32 4.6 / 0.9, fp16 1.5 / 0.4, int8 0.23 / 0.03."""

SOP_KINDS = ("conv", "fc", "attention")


@dataclass(frozen=True)
class LayerEnergy:
    """One layer's contribution: ``ops`` operations of type ``op`` ("MAC" | "AC") per sample."""

    name: str
    kind: str
    op: str
    ops: float
    energy_pj: float


@dataclass(frozen=True)
class FormulaEnergy:
    """Result of :func:`paper_energy` for ONE inference (one sample, all T timesteps).

    Attributes:
        total_pj / total_mj: E (pJ / mJ).
        mac_pj / ac_pj: the MAC (encoding) and AC (SOP) terms, pJ.
        macs / sops: the operation counts behind them.
        layers: per-layer breakdown (neuron records are left out; the formula has no term).
        precision, e_mac_pj, e_ac_pj: the per-op energies used.
        encoding_times_T: whether the encoding layer's MACs were multiplied by T.
        kind: always "estimate (theoretical formula)".
        sources: citations for the figures.
    """

    total_pj: float
    mac_pj: float
    ac_pj: float
    macs: float
    sops: float
    T: int
    precision: str
    e_mac_pj: float
    e_ac_pj: float
    encoding_times_T: bool
    layers: list[LayerEnergy] = field(default_factory=list)
    kind: str = "estimate (theoretical formula)"
    sources: tuple[str, ...] = ()

    @property
    def total_mj(self) -> float:
        """Total energy in mJ."""
        return self.total_pj / PJ_PER_MJ

    def to_dict(self) -> dict:
        """JSON-serialisable view (units in the key names)."""
        return {
            "kind": self.kind,
            "total_pj": self.total_pj,
            "total_mj": self.total_mj,
            "mac_pj": self.mac_pj,
            "ac_pj": self.ac_pj,
            "macs": self.macs,
            "sops": self.sops,
            "T": self.T,
            "precision": self.precision,
            "e_mac_pj": self.e_mac_pj,
            "e_ac_pj": self.e_ac_pj,
            "encoding_times_T": self.encoding_times_T,
            "sources": list(self.sources),
            "layers": [vars(layer) for layer in self.layers],
        }


def sop(rec: object) -> float:
    """Synaptic operations of one non-encoding layer per sample: fr * T * FLOPs.

    Source: Spikformer appendix, SOP(l) = fr * T * FLOPs(l) (reference/energy.md).
    """
    return float(rec.in_firing_rate) * rec.T * float(rec.flops)


def paper_energy(
    records: Iterable[object],
    *,
    precision: str = "fp32",
    encoding_times_T: bool = True,
    e_mac_pj: float | None = None,
    e_ac_pj: float | None = None,
) -> FormulaEnergy:
    """Energy per inference from per-layer records with the papers' MAC/AC formula.

    Args:
        records: per-sample layer records (``LayerRecord`` or any object with the fields
            ``name, kind, flops, in_firing_rate, T, is_encoding_layer``), e.g. from
            ``stc.models.stats.collect``. Layers flagged ``is_encoding_layer`` count as MACs
            (FLOPs, times T if ``encoding_times_T``); other conv/fc/attention layers as ACs
            (SOP = fr * T * FLOPs); "neuron" records are ignored (no term in the formula).
        precision: "fp32" | "fp16" | "int8" preset (Horowitz ISSCC 2014).
        encoding_times_T: multiply the encoding layer's MACs by T (stc's default: True, since
            the encoding conv runs at every timestep in the official code).
        e_mac_pj / e_ac_pj: override the preset's per-op energies (pJ).

    Returns:
        FormulaEnergy in pJ (``total_pj``) and mJ (``total_mj``) with a per-layer breakdown.

    Raises:
        ValueError: unknown ``precision``, non-positive energies, invalid records.
        TypeError: records lacking the contract's fields.
    """
    if precision not in PRESETS:
        raise ValueError(f"precision must be one of {', '.join(PRESETS)}; got {precision!r}")
    if not isinstance(encoding_times_T, bool):
        raise TypeError(f"encoding_times_T must be a bool, got {type(encoding_times_T).__name__}")
    preset = PRESETS[precision]
    e_mac = preset.e_mac_pj if e_mac_pj is None else check_positive("e_mac_pj", e_mac_pj)
    e_ac = preset.e_ac_pj if e_ac_pj is None else check_positive("e_ac_pj", e_ac_pj)
    recs = check_records(records)
    if not recs:
        raise ValueError("records is empty; expected at least one layer record")
    T = recs[0].T
    layers: list[LayerEnergy] = []
    macs = sops = 0.0
    for r in recs:
        if r.kind not in SOP_KINDS:
            continue
        if r.is_encoding_layer:
            n = float(r.flops) * (T if encoding_times_T else 1)
            macs += n
            layers.append(LayerEnergy(r.name, r.kind, "MAC", n, n * e_mac))
        else:
            n = sop(r)
            sops += n
            layers.append(LayerEnergy(r.name, r.kind, "AC", n, n * e_ac))
    sources = [preset.source, "Spikformer (Zhou et al., ICLR 2023) appendix; "
               "SDT (Yao et al., NeurIPS 2023): E = E_MAC*FL_conv1 + E_AC*SUM SOP"]
    if e_mac_pj is not None or e_ac_pj is not None:
        sources.append(f"user-supplied per-op energies: E_MAC={e_mac} pJ, E_AC={e_ac} pJ")
    return FormulaEnergy(
        total_pj=macs * e_mac + sops * e_ac,
        mac_pj=macs * e_mac,
        ac_pj=sops * e_ac,
        macs=macs,
        sops=sops,
        T=T,
        precision=precision,
        e_mac_pj=e_mac,
        e_ac_pj=e_ac,
        encoding_times_T=encoding_times_T,
        layers=layers,
        sources=tuple(sources),
    )
