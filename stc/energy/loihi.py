"""Loihi energy ESTIMATES from counted operations and published per-operation figures.

Nothing here is a measurement. Every result carries ``kind = "estimate"`` and the sources of its
figures (reference/energy.md):

* Loihi 1 ("loihi1"): per-operation energies from Davies et al., "Loihi: A Neuromorphic Manycore
  Processor with On-Chip Learning", IEEE Micro 38(1), 2018, Table 2 (pre-silicon, 14 nm, 0.75 V);
  static power about 104 mW per chip, derived from 3.34 W for 32 chips (Frady et al. 2020),
  charged for the run time = timesteps x ``timestep_s`` (a stated assumption).
* Loihi 2 ("loihi2"): Intel published no per-operation table. stc gives a BOUND derived from the
  Hala Point system figures (1,152 Loihi 2 chips, 2,600 W maximum, > 15 TOPS/W on 8-bit DNNs,
  380T synaptic ops/s, 240T neuron ops/s): low = ops / 15 TOPS/W; high = 2,600 W x the time the
  ops take at Hala Point's peak rates. Labelled as such.
* "loihi3": no public source; rejected with :class:`stc.errors.UnsupportedTargetError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from stc.energy.formula import PJ_PER_MJ
from stc.energy.records import check_records
from stc.errors import UnsupportedTargetError, check_positive

DAVIES_2018 = ("Davies et al., IEEE Micro 38(1) 2018, Table 2 "
               "(Loihi 1, pre-silicon, 14 nm, 0.75 V)")
FRADY_2020 = "3.34 W / 32 chips (Frady et al. 2020): ~104 mW static power per Loihi 1 chip"
HALA_POINT = ("Intel Hala Point announcement, 2024: 1,152 Loihi 2 chips, 2,600 W max, "
              "> 15 TOPS/W (8-bit DNN), 380T synaptic ops/s, 240T neuron ops/s")


@dataclass(frozen=True)
class PerOp:
    """One published per-operation energy: ``pj`` per ``operation``, with its source."""

    operation: str
    pj: float
    source: str


LOIHI1_PER_OP: dict[str, PerOp] = {
    "synaptic_op": PerOp("synaptic spike op (min)", 23.6, DAVIES_2018),
    "synaptic_update": PerOp("synaptic update (pairwise STDP)", 120.0, DAVIES_2018),
    "neuron_update_active": PerOp("neuron update, active", 81.0, DAVIES_2018),
    "neuron_update_inactive": PerOp("neuron update, inactive", 52.0, DAVIES_2018),
    "spike_within_tile": PerOp("within-tile spike", 1.7, DAVIES_2018),
    "hop_ew": PerOp("tile hop east-west", 3.0, DAVIES_2018),
    "hop_ns": PerOp("tile hop north-south", 4.0, DAVIES_2018),
}
"""Loihi 1 per-operation energies (pJ), Davies et al. 2018 Table 2."""

LOIHI1_STATIC_W_PER_CHIP = 3.34 / 32
"""Static power per Loihi 1 chip in W (~0.104 W), derived from Frady et al. 2020."""

HALA_POINT_W = 2600.0
HALA_POINT_OPS_PER_J = 15e12  # > 15 TOPS/W, i.e. at most 1/15e12 J per 8-bit op
HALA_POINT_SYN_OPS_PER_S = 380e12
HALA_POINT_NEURON_OPS_PER_S = 240e12

SUPPORTED_CHIPS = ("loihi1", "loihi2")


@dataclass(frozen=True)
class LoihiOpCounts:
    """Operations of ONE inference (one sample, all timesteps) on a Loihi mapping.

    Attributes:
        synaptic_ops: synaptic spike operations (one per nonzero input x fan-out weight).
        neuron_updates_active / neuron_updates_inactive: compartment updates per inference.
        spikes_within_tile, hops_ew, hops_ns: spike routing events (0 when not modelled).
        synaptic_updates: learning updates (0 for inference).
        timesteps: algorithmic timesteps per inference (T).
        cores / chips: resources of the mapping (None when unknown).
    """

    synaptic_ops: float
    neuron_updates_active: float
    neuron_updates_inactive: float = 0.0
    timesteps: int = 1
    spikes_within_tile: float = 0.0
    hops_ew: float = 0.0
    hops_ns: float = 0.0
    synaptic_updates: float = 0.0
    cores: int | None = None
    chips: int | None = None

    def __post_init__(self) -> None:
        for name in ("synaptic_ops", "neuron_updates_active", "neuron_updates_inactive",
                     "spikes_within_tile", "hops_ew", "hops_ns", "synaptic_updates"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(v).__name__}")
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be finite and >= 0; got {v}")
        if isinstance(self.timesteps, bool) or not isinstance(self.timesteps, int) \
                or self.timesteps < 1:
            raise ValueError(f"timesteps must be an int >= 1; got {self.timesteps!r}")
        for name in ("cores", "chips"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be None or an int >= 1; got {v!r}")


@dataclass(frozen=True)
class EnergyItem:
    """One line of an estimate: ``count`` x ``pj_per_op`` = ``energy_pj``, with its source."""

    operation: str
    count: float
    pj_per_op: float
    energy_pj: float
    source: str


@dataclass(frozen=True)
class LoihiEnergy:
    """A Loihi energy estimate for one inference.

    Attributes:
        chip: "loihi1" | "loihi2".
        total_pj: the estimate (pJ); for "loihi2" the upper end of the bound.
        low_pj: lower end of the bound (equals total_pj for "loihi1").
        dynamic_pj / static_pj: the per-operation part and the static-power part (pJ).
        items: per-operation lines with sources.
        timestep_s: assumed duration of one timestep (s), or None if static was not charged.
        kind: always "estimate" (never a measurement).
        label: what the figure is, e.g. "Loihi 1, pre-silicon, 14 nm".
        notes: assumptions and omissions.
    """

    chip: str
    total_pj: float
    low_pj: float
    dynamic_pj: float
    static_pj: float
    items: list[EnergyItem]
    timestep_s: float | None
    label: str
    notes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    kind: str = "estimate"
    counts: LoihiOpCounts | None = field(default=None, repr=False)

    @property
    def total_mj(self) -> float:
        """Estimate in mJ."""
        return self.total_pj / PJ_PER_MJ

    @property
    def low_mj(self) -> float:
        """Lower end of the estimate in mJ."""
        return self.low_pj / PJ_PER_MJ

    def to_dict(self) -> dict:
        """JSON-serialisable view (units in the key names)."""
        return {
            "kind": self.kind, "chip": self.chip, "label": self.label,
            "total_pj": self.total_pj, "total_mj": self.total_mj,
            "low_pj": self.low_pj, "low_mj": self.low_mj,
            "dynamic_pj": self.dynamic_pj, "static_pj": self.static_pj,
            "timestep_s": self.timestep_s,
            "items": [vars(i) for i in self.items],
            "notes": list(self.notes), "sources": list(self.sources),
            "counts": None if self.counts is None else vars(self.counts),
        }


def _resource(report: object, names: tuple[str, ...]) -> int | None:
    for n in names:
        v = report.get(n) if isinstance(report, Mapping) else getattr(report, n, None)
        if v is not None and not isinstance(v, (list, tuple, dict)):  # "cores": per-core list
            return int(v)
    return None


def resources_from_mapping(report: object) -> tuple[int | None, int | None]:
    """(cores, chips) from a mapping report (object or dict; duck-typed).

    Looks for ``cores`` / ``num_cores`` / ``n_cores`` / ``cores_used`` and ``chips`` /
    ``num_chips`` / ``n_chips`` / ``chips_used``; a missing field gives None.
    """
    if report is None:
        return None, None
    cores = _resource(report, ("cores", "num_cores", "n_cores", "cores_used"))
    chips = _resource(report, ("chips", "num_chips", "n_chips", "chips_used"))
    return cores, chips


def counts_from_records(
    records: Iterable[object],
    *,
    active_fraction: float = 1.0,
    mapping: object | None = None,
) -> LoihiOpCounts:
    """Loihi operation counts of one inference from per-layer records.

    Counting rules (stated assumptions):
      * synaptic ops: SOP = fr * T * FLOPs for every non-encoding conv/fc/attention layer;
        the encoding layer receives dense (graded) input, so FLOPs * T (fr = 1).
      * neuron updates: "neuron" records' ``flops`` (neurons per timestep) x T; a fraction
        ``active_fraction`` of them is charged as active (81 pJ), the rest as inactive (52 pJ).
        The default 1.0 is the upper bound.
      * spikes: when a neuron record has ``out_firing_rate`` (stc.models.stats does), its
        output spikes (neurons x T x out_firing_rate) are charged as within-tile spikes
        (1.7 pJ each, the cheapest route: a lower bound); hops between tiles are not modelled
        (they need a placement).

    Args:
        records: layer records (see ``stc.energy.records``).
        active_fraction: share of neuron updates charged as active, in [0, 1].
        mapping: optional mapping report giving cores/chips (see :func:`resources_from_mapping`).

    Raises:
        ValueError: bad ``active_fraction`` or invalid records.
    """
    if isinstance(active_fraction, bool) or not isinstance(active_fraction, (int, float)) \
            or not 0.0 <= active_fraction <= 1.0:
        raise ValueError(f"active_fraction must be a number in [0, 1]; got {active_fraction!r}")
    recs = check_records(records)
    if not recs:
        raise ValueError("records is empty; expected at least one layer record")
    T = recs[0].T
    syn = neu = spikes = 0.0
    for r in recs:
        if r.kind == "neuron":
            neu += float(r.flops) * T
            out_fr = getattr(r, "out_firing_rate", None)
            if out_fr is not None:
                spikes += float(r.flops) * T * float(out_fr)
        elif r.is_encoding_layer:
            syn += float(r.flops) * T
        else:
            syn += float(r.in_firing_rate) * T * float(r.flops)
    cores, chips = resources_from_mapping(mapping)
    return LoihiOpCounts(
        synaptic_ops=syn,
        neuron_updates_active=neu * active_fraction,
        neuron_updates_inactive=neu * (1.0 - active_fraction),
        timesteps=T,
        spikes_within_tile=spikes,
        cores=cores,
        chips=chips,
    )


def _check_chip(chip: object) -> str:
    if isinstance(chip, str) and chip.lower().replace(" ", "") in ("loihi3", "loihi-3"):
        raise UnsupportedTargetError(
            "chip='loihi3': there is no public Loihi 3 toolchain or energy figure; stc does not "
            "invent one. Use 'loihi1' (Davies et al. 2018 per-op table) or 'loihi2' "
            "(Hala Point-derived bound)."
        )
    if chip not in SUPPORTED_CHIPS:
        raise ValueError(f"chip must be one of {', '.join(SUPPORTED_CHIPS)}; got {chip!r}")
    return str(chip)


def estimate_loihi_energy(
    counts: LoihiOpCounts,
    *,
    chip: str = "loihi1",
    timestep_s: float | None = None,
) -> LoihiEnergy:
    """Estimate the energy of one inference on Loihi from counted operations.

    Loihi 1: E = SUM_op count(op) x pJ(op) (Davies 2018 Table 2) + 104 mW x chips x T x
    ``timestep_s`` (static; charged only when ``chips`` and ``timestep_s`` are known).
    Loihi 2: bound from Hala Point figures, low = (synaptic + neuron ops) / 15 TOPS/W,
    high = 2,600 W x max(synaptic ops / 380T/s, neuron ops / 240T/s); ``total_pj`` = high.

    Args:
        counts: operations per inference (:class:`LoihiOpCounts`).
        chip: "loihi1" | "loihi2". "loihi3" raises UnsupportedTargetError.
        timestep_s: assumed wall-clock duration of one timestep (s), for the static term.

    Returns:
        LoihiEnergy (pJ / mJ, items with sources, kind "estimate").

    Raises:
        UnsupportedTargetError: ``chip`` is "loihi3".
        ValueError / TypeError: unknown chip, bad ``counts`` or ``timestep_s``.
    """
    chip = _check_chip(chip)
    if not isinstance(counts, LoihiOpCounts):
        raise TypeError(f"counts must be a LoihiOpCounts, got {type(counts).__name__}")
    if timestep_s is not None:
        timestep_s = check_positive("timestep_s", timestep_s)
    if chip == "loihi1":
        return _loihi1(counts, timestep_s)
    return _loihi2(counts)


def _loihi1(c: LoihiOpCounts, timestep_s: float | None) -> LoihiEnergy:
    items = []
    for key, count in (
        ("synaptic_op", c.synaptic_ops),
        ("synaptic_update", c.synaptic_updates),
        ("neuron_update_active", c.neuron_updates_active),
        ("neuron_update_inactive", c.neuron_updates_inactive),
        ("spike_within_tile", c.spikes_within_tile),
        ("hop_ew", c.hops_ew),
        ("hop_ns", c.hops_ns),
    ):
        p = LOIHI1_PER_OP[key]
        items.append(EnergyItem(p.operation, float(count), p.pj, float(count) * p.pj, p.source))
    dynamic = sum(i.energy_pj for i in items)
    notes = ["per-op figures are pre-silicon Loihi 1 (14 nm) values, not Loihi 2 measurements"]
    static = 0.0
    if c.chips is not None and timestep_s is not None:
        run_s = c.timesteps * timestep_s
        static = LOIHI1_STATIC_W_PER_CHIP * c.chips * run_s * 1e12
        items.append(EnergyItem(
            f"static power x {c.chips} chip(s) x {c.timesteps} steps x {timestep_s:g} s/step "
            "(W*s)", c.chips * run_s, LOIHI1_STATIC_W_PER_CHIP * 1e12, static, FRADY_2020))
        notes.append(f"static energy charged for an ASSUMED timestep duration of {timestep_s:g} s")
    else:
        notes.append("static energy NOT included (needs chips from a mapping and timestep_s)")
    if c.spikes_within_tile == 0 and c.hops_ew == 0 and c.hops_ns == 0:
        notes.append("spike routing (within-tile spikes, hops) not modelled")
    elif c.hops_ew == 0 and c.hops_ns == 0:
        notes.append("spikes charged as within-tile only (lower bound); tile hops not modelled")
    return LoihiEnergy(
        chip="loihi1", total_pj=dynamic + static, low_pj=dynamic + static, dynamic_pj=dynamic,
        static_pj=static, items=items, timestep_s=timestep_s if static else None,
        label="Loihi 1, pre-silicon, 14 nm (estimate)", notes=tuple(notes),
        sources=(DAVIES_2018, FRADY_2020), counts=c,
    )


def _loihi2(c: LoihiOpCounts) -> LoihiEnergy:
    neuron_ops = c.neuron_updates_active + c.neuron_updates_inactive
    ops = c.synaptic_ops + neuron_ops
    low = ops / HALA_POINT_OPS_PER_J * 1e12
    busy_s = max(c.synaptic_ops / HALA_POINT_SYN_OPS_PER_S,
                 neuron_ops / HALA_POINT_NEURON_OPS_PER_S)
    high = HALA_POINT_W * busy_s * 1e12
    items = [
        EnergyItem("ops (synaptic + neuron) at > 15 TOPS/W (low bound)", ops,
                   1e12 / HALA_POINT_OPS_PER_J, low, HALA_POINT),
        EnergyItem("2,600 W x time at peak rates 380T syn/s, 240T neuron/s (high bound)",
                   busy_s, HALA_POINT_W * 1e12, high, HALA_POINT),
    ]
    return LoihiEnergy(
        chip="loihi2", total_pj=high, low_pj=low, dynamic_pj=high, static_pj=0.0, items=items,
        timestep_s=None, label="Loihi 2, Hala Point-derived bound (not a per-op model)",
        notes=("Intel published no per-operation energy table for Loihi 2; this is a system-level "
               "bound from Hala Point's announced figures",),
        sources=(HALA_POINT,), counts=c,
    )
