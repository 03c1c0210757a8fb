"""Fixed-point layer description between the IR and Lava: what a netx network holds.

A network is a list ``[InputLayer, (DenseLayer | ConvLayer | FlattenLayer)...]``. Weights are
integer weight mantissas exactly as Lava uses them (see :func:`fixed_point.check_loihi_weight`);
neurons are Loihi CUBA LIF (:class:`Cuba`) or, with ``neuron=None``, netx's non-leaky readout
(iDecay 0, vDecay 4096, vThMant 2**17: it never fires).

:func:`reference_forward` runs such a network with the NumPy oracle of
``stc.lava.fixed_point`` and *without* pipeline delay: layer k at step t sees layer k-1's
spikes of step t. Lava adds one step per synapse layer; the lava-sim executor removes that
latency before returning outputs, so both produce the same ``[B, T, ...]`` arrays.
Source: shared/reference/lava.md (netx format; fixed-point CUBA LIF).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed_point import (
    MAX_VTH_MANT,
    check_loihi_weight,
    conv2d_int,
    cuba_lif_fixed,
)


@dataclass(frozen=True)
class Cuba:
    """Loihi CUBA LIF parameters in netx units: decays 0..4096 (x/4096), vThMant 0..2**17-1."""

    i_decay: int
    v_decay: int
    v_th_mant: int

    def __post_init__(self) -> None:
        for name in ("i_decay", "v_decay"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) \
                    or not 0 <= val <= 4096:
                raise ValueError(f"Cuba.{name} must be an int in [0, 4096], got {val!r}")
        if not isinstance(self.v_th_mant, (int, np.integer)) \
                or not 0 <= self.v_th_mant <= MAX_VTH_MANT:
            raise ValueError(f"Cuba.v_th_mant must be an int in [0, {MAX_VTH_MANT}], "
                             f"got {self.v_th_mant!r}")


READOUT_PARAMS = (0, 4096, 1 << 17)  # netx's neuron-less layer: iDecay, vDecay, vThMant


@dataclass
class InputLayer:
    """Network input; ``shape`` in torch order: (N,) or (C, H, W)."""

    shape: tuple[int, ...]


@dataclass
class DenseLayer:
    """Fully connected synapses weight [out, in] (int) + CUBA neurons (bias [out] mantissas)."""

    weight: np.ndarray
    neuron: Cuba | None
    bias: np.ndarray | None = None
    name: str = "dense"

    def __post_init__(self) -> None:
        self.weight = check_loihi_weight(f"{self.name}.weight", self.weight)
        if self.weight.ndim != 2:
            raise ValueError(f"{self.name}.weight must be [out, in], got {self.weight.shape}")
        self.bias = _check_bias(self.name, self.bias, self.weight.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.weight.shape[0],)


@dataclass
class ConvLayer:
    """Conv synapses weight [Cout, Cin/groups, kH, kW] (int) + CUBA neurons; torch geometry."""

    weight: np.ndarray
    neuron: Cuba | None
    in_shape: tuple[int, int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: np.ndarray | None = None
    name: str = "conv"

    def __post_init__(self) -> None:
        self.weight = check_loihi_weight(f"{self.name}.weight", self.weight)
        if self.weight.ndim != 4:
            raise ValueError(f"{self.name}.weight must be [Cout, Cin/g, kH, kW], "
                             f"got {self.weight.shape}")
        if self.in_shape[0] != self.weight.shape[1] * self.groups:
            raise ValueError(f"{self.name}: input has {self.in_shape[0]} channels but weight "
                             f"expects {self.weight.shape[1] * self.groups}")
        self.bias = _check_bias(self.name, self.bias, self.weight.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        ho = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        if ho < 1 or wo < 1:
            raise ValueError(f"{self.name}: output would be empty for input {self.in_shape}")
        return (self.weight.shape[0], ho, wo)


@dataclass
class FlattenLayer:
    """Flattens (C, H, W) to (C*H*W,) in torch order (netx ``flatten``)."""

    in_shape: tuple[int, ...]

    @property
    def shape(self) -> tuple[int]:
        return (int(np.prod(self.in_shape)),)


Layer = InputLayer | DenseLayer | ConvLayer | FlattenLayer


def _check_bias(name: str, bias, n: int) -> np.ndarray | None:
    if bias is None:
        return None
    b = np.asarray(bias)
    if b.dtype.kind == "f" and not np.all(b == np.round(b)):
        raise TypeError(f"{name}.bias must hold integer mantissas, got fractional floats")
    b = b.astype(np.int64).reshape(-1)
    if b.shape[0] != n:
        raise ValueError(f"{name}.bias must have {n} entries, got {b.shape[0]}")
    if np.any(np.abs(b) >= 4096):
        raise ValueError(f"{name}.bias mantissas must lie in [-4095, 4095] (13-bit), "
                         f"got range [{b.min()}, {b.max()}]")
    return b


def validate_layers(layers: list) -> list:
    """Check the chain: InputLayer first, shapes consistent, flatten before dense on 3-D input.

    Raises:
        TypeError: an element is not a layer dataclass.
        ValueError: empty network, misplaced input, or shape mismatch (names the layer).
    """
    if not layers or not isinstance(layers[0], InputLayer):
        raise ValueError("layers must start with an InputLayer")
    if len(layers) < 2:
        raise ValueError("layers must contain at least one synapse layer after the input")
    shape = tuple(layers[0].shape)
    for i, layer in enumerate(layers[1:], start=1):
        if isinstance(layer, DenseLayer):
            if len(shape) != 1 or shape[0] != layer.weight.shape[1]:
                raise ValueError(f"layer {i} ({layer.name}) expects input "
                                 f"({layer.weight.shape[1]},) but receives {shape}")
        elif isinstance(layer, ConvLayer):
            if tuple(layer.in_shape) != shape:
                raise ValueError(f"layer {i} ({layer.name}) expects input {layer.in_shape} "
                                 f"but receives {shape}")
        elif isinstance(layer, FlattenLayer):
            if tuple(layer.in_shape) != shape:
                raise ValueError(f"layer {i} (flatten) expects {layer.in_shape}, gets {shape}")
        else:
            raise TypeError(f"layer {i} is a {type(layer).__name__}; expected DenseLayer, "
                            "ConvLayer or FlattenLayer")
        shape = tuple(layer.shape)
    if isinstance(layers[-1], FlattenLayer):
        raise ValueError("the last layer must be a synapse layer, not a flatten")
    return layers


def synapse_layers(layers: list) -> list:
    """The Dense/Conv layers (each adds one step of delay in Lava)."""
    return [lay for lay in layers if isinstance(lay, (DenseLayer, ConvLayer))]


def reference_forward(layers: list, x: np.ndarray) -> np.ndarray:
    """Output spikes of the network for integer input x [B, T, *input_shape].

    Returns uint8 [B, T, *output_shape] (aligned: no pipeline delay, see module doc).
    Independent NumPy oracle of Lava's fixed_pt models.
    """
    validate_layers(layers)
    x = np.asarray(x, dtype=np.int64)
    B, T = x.shape[:2]
    s = np.swapaxes(x, 0, 1)  # [T, B, *shape]: the whole batch at once
    for layer in layers[1:]:
        if isinstance(layer, FlattenLayer):
            s = s.reshape(T, B, -1)
            continue
        if isinstance(layer, DenseLayer):
            a = s @ layer.weight.T
        else:
            a = conv2d_int(s.reshape(T * B, *s.shape[2:]), layer.weight, layer.stride,
                           layer.padding, layer.dilation, layer.groups)
            a = a.reshape(T, B, *a.shape[1:])
        n = layer.neuron
        params = READOUT_PARAMS if n is None else (n.i_decay, n.v_decay, n.v_th_mant)
        bias = 0 if layer.bias is None else layer.bias.reshape((-1,) + (1,) * (a.ndim - 3))
        s = cuba_lif_fixed(a, *params, bias)
    return np.ascontiguousarray(np.swapaxes(s, 0, 1))
