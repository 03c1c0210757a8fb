"""Loihi 2 per-core resources, a greedy core allocator, and the mapping report.

All limits live here, with their sources (shared/reference/energy.md, "Loihi 2" / "Loihi 1"):

* ``NEURONS_PER_CORE = 8192``: Loihi 2 has up to 1M neurons on 128 neurocores; 1M / 128 is
  an *inferred* per-core figure (Intel, Loihi 2 brief 2021).
* ``CORE_MEMORY_BYTES = 192 KiB``: Loihi 2's SRAM per neurocore. Intel does not publish the
  split between synapses and neuron state, so we ASSUME one shared pool: each 8-bit dense
  synapse costs 1 byte, each conv kernel is stored once per core (weights shared across the
  feature map), and each CUBA neuron costs ``NEURON_STATE_BYTES = 8`` (u and v, 24 bit each,
  plus a 16-bit bias), i.e. 8,192 neurons use 64 KiB of state.
* ``AXONS_IN_PER_CORE = AXONS_OUT_PER_CORE = 4096``: the Loihi 1 fan-in/fan-out axon limit
  per core (Davies et al., IEEE Micro 2018). Loihi 2 figures are unpublished; we keep the
  Loihi 1 figure as a labelled, conservative stand-in.
* ``CORES_PER_CHIP = 128``: Loihi 2 neurocores per chip.

Allocation strategy (documented, deterministic): layers are placed in order; each layer is
split into equal slices of at most ``per_core`` neurons, where ``per_core`` is the largest
count meeting all three per-core limits (neurons, memory, input axons); slices go to the next
free cores, filling chip 0 first, then chip 1, ... Layers do not share cores (simple and
keeps one layer's traffic local). A dense layer whose input alone exceeds the fan-in axon
limit cannot be split by output neurons and raises :class:`MappingError`, as does a network
needing more cores than the chips given.

Inter-chip spike traffic (estimate): every spike of a source core is sent once to each
*other* chip that hosts a slice of a consuming layer; spikes/step = neurons x firing rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from stc.errors import MappingError

NEURONS_PER_CORE = 8192
CORE_MEMORY_BYTES = 192 * 1024
NEURON_STATE_BYTES = 8
SYNAPSE_BYTES = 1
AXONS_IN_PER_CORE = 4096
AXONS_OUT_PER_CORE = 4096
CORES_PER_CHIP = 128
DEFAULT_FIRING_RATE = 0.1  # used for traffic estimates when no measured rate is given

LIMIT_SOURCES = {
    "neurons_per_core": "8,192 = 1M neurons / 128 cores (Loihi 2 brief; inferred)",
    "core_memory_bytes": "192 KB SRAM per Loihi 2 core; shared by synapses and state "
                         "(assumption: 1 B/synapse, 8 B/neuron)",
    "axons_in_per_core": "4,096 fan-in axons per core (Loihi 1, Davies 2018; stand-in)",
    "axons_out_per_core": "4,096 fan-out axons per core (Loihi 1, Davies 2018; stand-in)",
    "cores_per_chip": "128 neurocores per Loihi 2 chip",
}

_CHIP_RE = re.compile(r"^ncl-(\d+)chips?$")


def parse_chip_config(chip_config: str) -> int:
    """Number of Loihi 2 chips in a ``chip_config`` string: "ncl-1chip", "ncl-2chip", ...

    Raises:
        TypeError: not a string. ValueError: another form, or 0 chips.
    """
    if not isinstance(chip_config, str):
        raise TypeError(f"chip_config must be a str like 'ncl-1chip', got "
                        f"{type(chip_config).__name__}")
    m = _CHIP_RE.match(chip_config.strip().lower())
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"chip_config must look like 'ncl-<N>chip' with N >= 1 (e.g. "
                         f"'ncl-1chip', 'ncl-2chip'), got {chip_config!r}")
    return int(m.group(1))


@dataclass
class LayerDemand:
    """What one layer needs: ``neurons``; ``fan_in`` synapses per neuron (dense) or
    ``kernel_bytes`` shared weights (conv); ``in_axons`` distinct input sources a slice needs
    (callable of slice size via ``in_axons_per_slice``); ``sources``: producing layers."""

    name: str
    neurons: int
    fan_in: int = 0
    kernel_bytes: int = 0
    in_size: int = 0
    in_axons_full: bool = True  # dense: every slice needs every input
    halo: int = 0  # conv: extra input axons per slice beyond the proportional share
    sources: list[str] = field(default_factory=list)
    firing_rate: float = DEFAULT_FIRING_RATE
    kind: str = "netx"  # "netx" (neurocore) or "host" (custom process on an embedded core)

    def in_axons(self, n_slice: int) -> int:
        if self.in_axons_full or self.neurons == 0:
            return self.in_size
        return min(self.in_size, math.ceil(self.in_size * n_slice / self.neurons) + self.halo)

    def memory(self, n_slice: int) -> int:
        return n_slice * (NEURON_STATE_BYTES + self.fan_in * SYNAPSE_BYTES) + self.kernel_bytes


@dataclass
class CoreUse:
    """One allocated core: its chip, layer, neuron range and utilisation fractions."""

    core: int
    chip: int
    layer: str
    neurons: int
    start: int
    memory_bytes: int
    in_axons: int
    neuron_util: float
    memory_util: float
    axon_util: float


@dataclass
class Allocation:
    """Result of :func:`allocate`: per-core use and the report (see :meth:`report`)."""

    chips_available: int
    cores: list[CoreUse]
    inter_chip_spikes_per_step: float
    host_layers: list[str]

    @property
    def cores_used(self) -> int:
        return len(self.cores)

    @property
    def chips_used(self) -> int:
        return len({c.chip for c in self.cores})

    def report(self) -> dict:
        """JSON-ready mapping report: cores, chips, per-core utilisation, traffic, limits."""
        util = [c.neuron_util for c in self.cores]
        return {
            "chips_available": self.chips_available,
            "chips_used": self.chips_used,
            "cores_used": self.cores_used,
            "mean_neuron_utilisation": sum(util) / len(util) if util else 0.0,
            "inter_chip_spikes_per_step": self.inter_chip_spikes_per_step,
            "host_layers": self.host_layers,
            "cores": [asdict(c) for c in self.cores],
            "limits": {
                "neurons_per_core": NEURONS_PER_CORE, "core_memory_bytes": CORE_MEMORY_BYTES,
                "axons_in_per_core": AXONS_IN_PER_CORE,
                "axons_out_per_core": AXONS_OUT_PER_CORE, "cores_per_chip": CORES_PER_CHIP,
                "sources": LIMIT_SOURCES,
            },
        }


def per_core_capacity(d: LayerDemand) -> int:
    """Largest slice size of layer ``d`` meeting the neuron, memory and fan-in limits.

    Raises:
        MappingError: no slice of even one neuron fits (names the limit hit).
    """
    if d.in_axons(1) > AXONS_IN_PER_CORE:
        raise MappingError(
            f"layer {d.name!r}: one neuron needs {d.in_axons(1)} input axons, above the "
            f"fan-in limit of {AXONS_IN_PER_CORE} per core ({LIMIT_SOURCES['axons_in_per_core']}"
            "); splitting by output neurons cannot help - reduce the layer's input size")
    if d.memory(1) > CORE_MEMORY_BYTES:
        raise MappingError(
            f"layer {d.name!r}: one neuron needs {d.memory(1)} bytes of synaptic memory, above "
            f"the {CORE_MEMORY_BYTES} bytes per core ({LIMIT_SOURCES['core_memory_bytes']})")
    n = min(NEURONS_PER_CORE, d.neurons)
    lo, hi = 1, n
    while lo < hi:  # largest n_slice with memory and axons within limits (both monotone)
        mid = (lo + hi + 1) // 2
        if d.memory(mid) <= CORE_MEMORY_BYTES and d.in_axons(mid) <= AXONS_IN_PER_CORE:
            lo = mid
        else:
            hi = mid - 1
    return lo


def allocate(demands: list[LayerDemand], chip_config: str = "ncl-1chip") -> Allocation:
    """Greedy layer-by-layer allocation of ``demands`` onto the chips of ``chip_config``.

    Host layers (``kind == "host"``: custom processes) use no neurocore and are listed apart.

    Raises:
        MappingError: the network needs more cores than ``chip_config`` provides (names the
            total, the per-chip figure and the layer that overflowed), or a per-core limit
            that one neuron already exceeds.
        ValueError: bad ``chip_config``.
    """
    chips = parse_chip_config(chip_config)
    total = chips * CORES_PER_CHIP
    cores: list[CoreUse] = []
    where: dict[str, list[CoreUse]] = {}
    host = []
    for d in demands:
        if d.kind == "host":
            host.append(d.name)
            continue
        cap = per_core_capacity(d)
        n_cores = math.ceil(d.neurons / cap)
        if len(cores) + n_cores > total:
            need = len(cores) + n_cores + sum(
                math.ceil(e.neurons / per_core_capacity(e)) for e in
                demands[demands.index(d) + 1:] if e.kind != "host")
            raise MappingError(
                f"network needs {need} neurocores but {chip_config!r} has {total} "
                f"({chips} chip(s) x {CORES_PER_CHIP} cores); layer {d.name!r} overflowed "
                f"({d.neurons} neurons, at most {cap} per core). Use a chip_config with "
                f"ncl-{math.ceil(need / CORES_PER_CHIP)}chip or more")
        size = math.ceil(d.neurons / n_cores)
        where[d.name] = []
        for i in range(n_cores):
            start = i * size
            n = min(size, d.neurons - start)
            idx = len(cores)
            mem, ax = d.memory(n), d.in_axons(n)
            use = CoreUse(core=idx, chip=idx // CORES_PER_CHIP, layer=d.name, neurons=n,
                          start=start, memory_bytes=mem, in_axons=ax,
                          neuron_util=n / NEURONS_PER_CORE, memory_util=mem / CORE_MEMORY_BYTES,
                          axon_util=ax / AXONS_IN_PER_CORE)
            cores.append(use)
            where[d.name].append(use)
    traffic = 0.0
    rates = {d.name: d.firing_rate for d in demands}
    for d in demands:
        for src in d.sources:
            if src not in where or d.name not in where:
                continue
            dst_chips = {c.chip for c in where[d.name]}
            for c in where[src]:
                traffic += c.neurons * rates[src] * len(dst_chips - {c.chip})
    return Allocation(chips_available=chips, cores=cores,
                      inter_chip_spikes_per_step=traffic, host_layers=host)
