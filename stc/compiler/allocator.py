"""``ResourceAllocator(num_chips, cores_per_chip, synapses_per_core)``: the original design's
allocator word, over stc.lava's layer demands and per-core limits.

It places the layers of a graph (or of a CompiledModel) on ``num_chips`` x ``cores_per_chip``
cores with the strategy of ``stc.lava.resources.allocate`` (layers in order, each split into
equal slices, one layer per core, chip 0 first), adding one limit: at most
``synapses_per_core`` synapses (dense fan-in x neurons, or a conv kernel's weights) per core.
The other per-core limits (neurons, 192 KiB memory, fan-in axons) and their sources are
``stc.lava.resources``'. Loihi 2 has 128 cores per chip; other values model other systems.
"""

from __future__ import annotations

import math
from dataclasses import asdict

from stc.errors import MappingError
from stc.lava.resources import CORES_PER_CHIP, LIMIT_SOURCES, Allocation, CoreUse
from stc.lava.resources import per_core_capacity as _capacity


class ResourceAllocator:
    """Allocate a spiking graph onto neuromorphic cores.

    Args:
        num_chips: chips available (>= 1).
        cores_per_chip: neurocores per chip (>= 1; Loihi 2: 128).
        synapses_per_core: synapse budget per core (>= 1), or None for the memory limit
            alone (stc.lava.resources: 192 KiB at 1 byte per synapse).

    Raises:
        ValueError: a non-positive or non-integer argument.
    """

    def __init__(self, num_chips: int = 1, cores_per_chip: int = CORES_PER_CHIP,
                 synapses_per_core: int | None = None) -> None:
        for name, v in (("num_chips", num_chips), ("cores_per_chip", cores_per_chip),
                        ("synapses_per_core", synapses_per_core)):
            if v is None and name == "synapses_per_core":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        self.num_chips, self.cores_per_chip = num_chips, cores_per_chip
        self.synapses_per_core = synapses_per_core

    @property
    def total_cores(self) -> int:
        return self.num_chips * self.cores_per_chip

    def _slice(self, d) -> int:
        cap = _capacity(d)
        if self.synapses_per_core is None:
            return cap
        if d.kernel_bytes > self.synapses_per_core:
            raise MappingError(f"layer {d.name!r}: its kernel has {d.kernel_bytes} weights, "
                               f"above synapses_per_core={self.synapses_per_core}")
        per = d.fan_in
        if per == 0:
            return cap
        fit = (self.synapses_per_core - d.kernel_bytes) // per
        if fit < 1:
            raise MappingError(f"layer {d.name!r}: one neuron has {per} synapses, above "
                               f"synapses_per_core={self.synapses_per_core}")
        return min(cap, fit)

    def allocate(self, model, firing_rates: dict[str, float] | None = None) -> Allocation:
        """Place ``model`` (stc.ir.Graph, or a CompiledModel: its fixed graph if any).

        Returns:
            stc.lava.resources.Allocation (``report()``: cores, chips, per-core utilisation).

        Raises:
            MappingError: an op with no Loihi form, a per-core limit one neuron exceeds, or
                more cores needed than ``num_chips * cores_per_chip`` (names how many).
        """
        from stc.lava.plan import plan_graph

        graph = getattr(model, "fixed_graph", None) or getattr(model, "graph", model)
        demands, _ = plan_graph(graph, firing_rates)
        cores: list[CoreUse] = []
        host: list[str] = []
        plan = []
        for d in demands:
            if d.kind == "host":
                host.append(d.name)
                continue
            size = self._slice(d)
            plan.append((d, math.ceil(d.neurons / size)))
        need = sum(n for _, n in plan)
        if need > self.total_cores:
            raise MappingError(f"the network needs {need} cores but {self.num_chips} chip(s) x "
                               f"{self.cores_per_chip} cores = {self.total_cores}; use "
                               f"num_chips={math.ceil(need / self.cores_per_chip)} or more")
        from stc.lava.resources import AXONS_IN_PER_CORE, CORE_MEMORY_BYTES, NEURONS_PER_CORE

        for d, n_cores in plan:
            size = math.ceil(d.neurons / n_cores)
            for i in range(n_cores):
                start = i * size
                n = min(size, d.neurons - start)
                idx = len(cores)
                mem, ax = d.memory(n), d.in_axons(n)
                cores.append(CoreUse(core=idx, chip=idx // self.cores_per_chip, layer=d.name,
                                     neurons=n, start=start, memory_bytes=mem, in_axons=ax,
                                     neuron_util=n / NEURONS_PER_CORE,
                                     memory_util=mem / CORE_MEMORY_BYTES,
                                     axon_util=ax / AXONS_IN_PER_CORE))
        return Allocation(chips_available=self.num_chips, cores=cores,
                          inter_chip_spikes_per_step=0.0,  # not estimated here
                          host_layers=host)

    def utilization(self, model) -> dict:
        """cores/chips used and available and the share of cores used, for ``model``."""
        a = self.allocate(model)
        return {"chips_available": self.num_chips, "chips_used": a.chips_used,
                "cores_available": self.total_cores, "cores_used": a.cores_used,
                "core_utilization": a.cores_used / self.total_cores,
                "cores": [asdict(c) for c in a.cores], "host_layers": a.host_layers,
                "sources": LIMIT_SOURCES}

    def __repr__(self) -> str:
        return (f"ResourceAllocator(num_chips={self.num_chips}, cores_per_chip="
                f"{self.cores_per_chip}, synapses_per_core={self.synapses_per_core})")
