"""stc.energy: the papers' SOP/AC/MAC formula (estimate), Loihi per-operation estimates, and GPU
energy measurement with the NVML/Zeus energy counter. Every result says whether it is an
estimate or a measurement and cites its figures' sources (shared/reference/energy.md)."""

from stc.energy.formula import PRESETS, FormulaEnergy, LayerEnergy, OpEnergy, paper_energy, sop
from stc.energy.gpu import (
    CounterMeter,
    GpuEnergy,
    GpuEnergyUnavailable,
    ZeusMeter,
    default_meter,
    measure_gpu_energy,
    nvml_meter,
)
from stc.energy.loihi import (
    LOIHI1_PER_OP,
    LoihiEnergy,
    LoihiOpCounts,
    counts_from_records,
    estimate_loihi_energy,
    resources_from_mapping,
)
from stc.energy.records import LAYER_KINDS, LayerRecord, check_records

__all__ = [
    "LAYER_KINDS", "LOIHI1_PER_OP", "PRESETS", "CounterMeter", "FormulaEnergy", "GpuEnergy",
    "GpuEnergyUnavailable", "LayerEnergy", "LayerRecord", "LoihiEnergy", "LoihiOpCounts",
    "OpEnergy", "ZeusMeter", "check_records", "counts_from_records", "default_meter",
    "estimate_loihi_energy",
    "measure_gpu_energy", "nvml_meter", "paper_energy", "resources_from_mapping", "sop",
]
