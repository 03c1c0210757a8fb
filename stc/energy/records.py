"""Per-layer operation records: the contract between ``stc.models.stats.collect`` and stc.energy.

A record describes one layer of one network for ONE sample: its kind, its FLOPs per timestep and
the firing rate of its input. ``stc.models.stats.collect(model, x)`` returns records with these
fields (CONTRIBUTING.md, "Models"); any object with the same attributes is accepted (duck typing).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

LAYER_KINDS = ("conv", "fc", "attention", "neuron")
"""Record kinds. conv / fc / attention count synaptic operations; neuron counts neuron updates."""

_FIELDS = ("name", "kind", "flops", "in_firing_rate", "T", "is_encoding_layer")


@dataclass(frozen=True)
class LayerRecord:
    """Operation count of one layer, per sample.

    Attributes:
        name: layer name (e.g. ``"patch_embed.proj_conv"``).
        kind: ``"conv" | "fc" | "attention" | "neuron"``.
        flops: operations per timestep per sample. For conv: k^2 * h_out * w_out * c_in * c_out;
            for fc: i * o (times tokens); for attention: the products of the spike matrix
            products; for neuron: the number of neurons updated per timestep.
        in_firing_rate: mean fraction of nonzero inputs (spikes / (elements * T)), in [0, 1].
            For an encoding layer (real-valued input) it is ignored.
        T: timesteps (>= 1).
        is_encoding_layer: True for the first layer that sees the real-valued input; the
            papers count it as MACs (reference/energy.md).

    Source: Spikformer (Zhou et al., ICLR 2023) appendix energy formula; SDT (Yao et al.,
    NeurIPS 2023) Eq. for E_SDT.
    """

    name: str
    kind: str
    flops: float
    in_firing_rate: float
    T: int
    is_encoding_layer: bool = False

    def __post_init__(self) -> None:
        check_record(self, where="LayerRecord")


def check_record(rec: object, *, where: str = "records") -> object:
    """Validate one record (duck-typed) and return it.

    Raises:
        TypeError: ``rec`` lacks a field of the contract, or a field has the wrong type.
        ValueError: unknown ``kind``, negative or non-finite ``flops``, firing rate outside
            [0, 1], or ``T < 1``.
    """
    missing = [f for f in _FIELDS if not hasattr(rec, f)]
    if missing:
        raise TypeError(
            f"{where}: a layer record must have fields {', '.join(_FIELDS)}; "
            f"{type(rec).__name__} lacks {', '.join(missing)}"
        )
    name = rec.name
    if rec.kind not in LAYER_KINDS:
        raise ValueError(f"{where}[{name!r}].kind must be one of {LAYER_KINDS}; got {rec.kind!r}")
    flops = rec.flops
    if isinstance(flops, bool) or not isinstance(flops, (int, float)):
        raise TypeError(f"{where}[{name!r}].flops must be a number, got {type(flops).__name__}")
    if not math.isfinite(flops) or flops < 0:
        raise ValueError(f"{where}[{name!r}].flops must be finite and >= 0; got {flops}")
    fr = rec.in_firing_rate
    if isinstance(fr, bool) or not isinstance(fr, (int, float)):
        raise TypeError(
            f"{where}[{name!r}].in_firing_rate must be a number, got {type(fr).__name__}"
        )
    if not rec.is_encoding_layer and not (0.0 <= fr <= 1.0):
        raise ValueError(f"{where}[{name!r}].in_firing_rate must be in [0, 1]; got {fr}")
    T = rec.T
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"{where}[{name!r}].T must be an int >= 1; got {T!r}")
    return rec


def check_records(records: Iterable[object]) -> list[object]:
    """Validate a sequence of records (see :func:`check_record`) and return it as a list.

    Raises:
        TypeError: ``records`` is not iterable, or an item is not a record.
        ValueError: an item is invalid, or the records disagree on T.
    """
    if isinstance(records, (str, bytes)) or not isinstance(records, Iterable):
        raise TypeError(
            f"records must be an iterable of layer records, got {type(records).__name__}"
        )
    out = [check_record(r) for r in records]
    Ts = {r.T for r in out}
    if len(Ts) > 1:
        raise ValueError(f"records must share one T (timesteps); got T values {sorted(Ts)}")
    return out
