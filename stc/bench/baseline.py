"""The comparison baseline: the same architecture computed the way the official code computes it.

Official Spikformer / SDT code (ZK-Zhou/spikformer, BICLab/Spike-Driven-Transformer) runs plain
PyTorch layers with SpikingJelly's multi-step LIF neurons (``MultiStepLIFNode``; its fastest
backend on GPU) and writes attention as dense PyTorch matrix products. The baseline is a deep
copy of an stc model (so the weights are shared by value) in which

* every ``stc.nn.LIF`` is replaced by SpikingJelly 2.0's ``neuron.LIFNode(step_mode="m")`` with
  the same tau / v_th / v_reset / decay_input / detach_reset (SpikingJelly 2.0 has no
  ``backend`` argument; it picks its fastest kernel for the device itself), reset before every
  call as the official code does with ``functional.reset_net``;
* every module's ``backend`` attribute is set to ``"torch"``, so attention runs as dense
  PyTorch products (stc's pure-PyTorch references of the official formulas).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class SpikingJellyLIF(nn.Module):
    """Multi-step LIF from SpikingJelly 2.0 (``LIFNode(step_mode="m")``): [T, ...] -> spikes.

    Stateless like ``stc.nn.LIF``: the node is reset before every call.

    Raises:
        ImportError: SpikingJelly is not installed (``pip install spikingjelly``).
    """

    def __init__(self, tau: float, v_th: float, v_reset: float | None, decay_input: bool,
                 detach_reset: bool) -> None:
        super().__init__()
        from spikingjelly.activation_based import neuron

        self.node = neuron.LIFNode(tau=tau, decay_input=decay_input, v_threshold=v_th,
                                   v_reset=v_reset, detach_reset=detach_reset, step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.node.reset()
        return self.node(x)


def spikingjelly_baseline(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with SpikingJelly LIF neurons and PyTorch attention (see module doc).

    Args:
        model: an stc model (``stc.models.create_model``) or any module built from ``stc.nn``.

    Returns:
        A new module with identical parameters and buffers; ``model`` is not modified.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: ``model`` contains no ``stc.nn.LIF`` (nothing to swap).
    """
    from stc.nn import LIF

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    base = copy.deepcopy(model)
    swapped = 0
    for parent in list(base.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LIF):
                sj = SpikingJellyLIF(child.tau, child.v_th, child.v_reset, child.decay_input,
                                     child.detach_reset)
                setattr(parent, name, sj)
                swapped += 1
    if swapped == 0:
        raise ValueError("model has no stc.nn.LIF modules; expected an stc spiking model")
    for m in base.modules():
        if isinstance(getattr(m, "backend", None), str):
            m.backend = "torch"
    if hasattr(base, "config") and hasattr(base.config, "backend"):
        base.config = copy.deepcopy(base.config)
        base.config.backend = "torch"
    return base
