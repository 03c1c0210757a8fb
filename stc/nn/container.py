"""Multi-step containers: the same nn.Sequential trains eagerly on [T, B, ...] and compiles.

- ``SeqToANNContainer(*layers)``: stateless layers applied at every timestep by merging T
  and B: [T, B, ...] -> layers on [T*B, ...] -> [T, B, ...] (SpikingJelly's
  ``layer.SeqToANNContainer`` does the same; stc's is written from its documented behaviour).
- ``MultiStepSequential(*layers)``: an nn.Sequential for [T, B, ...] whose stc.nn neurons see
  the whole sequence (they integrate over T) and whose other layers are merged as above.

Inside both, layers see batch-first tensors [N, ...], so dims mean what they mean for the
compiler (``nn.Flatten()`` flattens the per-sample axes): the compiled model's output equals
the eager output's mean over T, [B, ...]. Both are nn.Sequential subclasses, so
``SpikeCompiler`` and ``stc.ir.frontends.from_torch`` read them like any nn.Sequential.
"""

from __future__ import annotations

import torch
from torch import nn

from stc.errors import check_tensor


def _is_neuron(m: nn.Module) -> bool:
    """stc.nn spiking neurons (multi-step: they take [T, ...] themselves)."""
    from .neurons import _SpikingNeuron

    return isinstance(m, _SpikingNeuron)


def _merged(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    T, B = x.shape[:2]
    y = layer(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])


class SeqToANNContainer(nn.Sequential):
    """Stateless layers on [T, B, ...]: ``x.flatten(0, 1)`` -> layers -> ``[T, B, ...]``.

    Raises:
        ValueError: input of rank < 2 ([T, B, ...] expected).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, min_dim=2, finite=False)
        T, B = x.shape[:2]
        y = super().forward(x.flatten(0, 1))
        return y.reshape(T, B, *y.shape[1:])


class MultiStepSequential(nn.Sequential):
    """nn.Sequential over [T, B, ...]: neurons (stc.nn) get the sequence, other layers run on
    the merged [T*B, ...] batch (nested containers are applied as they define).

    Shapes: x [T, B, *in] -> [T, B, *out]. ``forward_mean(x)`` = mean over T, [B, *out] (what
    the compiled model returns with its TimeMean readout).

    Raises:
        ValueError: input of rank < 2.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, min_dim=2, finite=False)
        for layer in self:
            if _is_neuron(layer) or isinstance(layer, (SeqToANNContainer, MultiStepSequential)):
                x = layer(x)
            else:
                x = _merged(layer, x)
        return x

    def forward_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over T of ``forward(x)``: [B, *out]."""
        return self.forward(x).mean(0)
