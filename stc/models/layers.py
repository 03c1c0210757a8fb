"""Building blocks shared by the models: direct encoding, token Linear+BN, the SPS stems, MLPs.

Parameter names follow the official code (ZK-Zhou/spikformer, BICLab/Spike-Driven-Transformer)
so that ``stc.models.keymap`` is a short, documented table: stem ``proj_conv``/``proj_bn`` ...
``rpe_conv``/``rpe_bn``; MLP ``fc1_linear``/``fc1_bn``/``fc2_linear``/``fc2_bn`` (the names of
Spikformer's CIFAR code; the ImageNet code's 1x1 ``fc1_conv`` maps onto them).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stc.errors import check_tensor
from stc.nn import LIF

from .config import ModelConfig


class PLIF(LIF):
    """Parametric LIF (Fang et al., "Incorporating learnable membrane time constant to enhance
    learning of spiking neural networks", ICCV 2021; SpikingJelly ParametricLIFNode, the
    official SDT's ``spike_mode="plif"``): 1 / tau = sigmoid(w) with a scalar parameter
    ``w`` (init w = -log(init_tau - 1)); otherwise stc.nn.LIF (decay_input, hard reset to 0).

    [T, ...] -> spikes [T, ...]. The kernels take tau as a number: it is recomputed from
    ``w`` on the host when ``w`` changes (loading a checkpoint), so this module serves
    inference of trained checkpoints; w receives no gradient.

    Raises:
        ValueError: init_tau <= 1 (sigmoid(w) < 1 needs tau > 1).
    """

    def __init__(self, init_tau: float = 2.0, v_th: float = 1.0, backend: str = "auto"):
        if not init_tau > 1.0:
            raise ValueError(f"init_tau must be > 1 for a parametric LIF, got {init_tau}")
        super().__init__(tau=init_tau, v_th=v_th, v_reset=0.0, detach_reset=True,
                         backend=backend)
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)), requires_grad=False)
        self._w_seen: tuple | None = None

    def _sync_tau(self) -> None:
        key = (self.w.data_ptr(), self.w._version)
        if key != self._w_seen:  # one host read per change of w, not per call
            self.tau = 1.0 / float(torch.sigmoid(self.w.detach().double()).cpu())
            self._w_seen = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._sync_tau()
        return super().forward(x)


def make_lif(cfg: ModelConfig, v_th: float = 1.0) -> LIF:
    """LIF as in the official code: MultiStepLIFNode(tau, v_th, v_reset=0, detach_reset);
    with ``cfg.neuron == "plif"`` a :class:`PLIF` (ParametricLIF, init_tau = cfg.tau)."""
    if cfg.neuron == "plif":
        return PLIF(init_tau=cfg.tau, v_th=v_th, backend=cfg.backend)
    return LIF(tau=cfg.tau, v_th=v_th, v_reset=0.0, detach_reset=True, backend=cfg.backend)


def direct_encode(x: torch.Tensor, T: int, in_channels: int, img_size: int,
                  time_first: bool | None = None) -> torch.Tensor:
    """Direct encoding: images [B, C, H, W] repeated to [T, B, C, H, W].

    Already-encoded input (event frames) is returned T-first with its own T':
    ``time_first=True``: x is [T', B, C, H, W] (stc's layout); ``False``: x is
    [B, T', C, H, W] (the official Spikformer / SDT layout; transposed here);
    ``None``: T-first, but an input whose dim 0 is not ``T`` while dim 1 is raises instead of
    guessing.

    Raises:
        TypeError: x is not a floating tensor; time_first not a bool or None.
        ValueError: rank not 4 or 5, or C/H/W differ from the model's (in_channels, img_size),
            or an ambiguous [B, T, ...] input with time_first=None.
    """
    check_tensor("x", x)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating tensor of pixel values, got {x.dtype}")
    if time_first is not None and not isinstance(time_first, bool):
        raise TypeError(f"time_first must be True, False or None, got {time_first!r}")
    if x.dim() not in (4, 5):
        raise ValueError(f"x must be images [B, C, H, W] or encoded [T, B, C, H, W], "
                         f"got shape {tuple(x.shape)}")
    if tuple(x.shape[-3:]) != (in_channels, img_size, img_size):
        raise ValueError(f"x must have [C, H, W] = [{in_channels}, {img_size}, {img_size}] "
                         f"in its last dims, got shape {tuple(x.shape)}")
    if x.dim() == 4:
        return x.unsqueeze(0).expand(T, *x.shape).contiguous()
    if time_first is False:
        x = x.transpose(0, 1).contiguous()
    elif time_first is None and x.shape[0] != T and x.shape[1] == T:
        raise ValueError(f"encoded input of shape {tuple(x.shape)}: dim 1 equals the model's "
                         f"T={T} but dim 0 does not; say which axis is time: "
                         "time_first=True for [T, B, C, H, W] (stc), time_first=False for "
                         "[B, T, C, H, W] (the official Spikformer / SDT code)")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError("encoded x needs T >= 1 and B >= 1")
    return x


def spatial_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """[T, B, C, H, W] -> tokens [T, B, N = H*W, D = C] (row-major, as ``flatten(3)``)."""
    return x.flatten(3).transpose(-1, -2).contiguous()


def _linear_bn(x: torch.Tensor, linear: nn.Linear, bn: nn.BatchNorm1d) -> torch.Tensor:
    lead = x.shape[:-1]
    y = bn(linear(x.reshape(-1, x.shape[-1])))
    return y.reshape(*lead, y.shape[-1])


def _conv_bn(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    T, B = x.shape[:2]
    y = bn(conv(x.flatten(0, 1)))
    return y.reshape(T, B, *y.shape[1:])


def _pool(x: torch.Tensor, pool: nn.Module) -> torch.Tensor:
    T, B = x.shape[:2]
    y = pool(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])


class _SPSBase(nn.Module):
    """Parameters of the SPS / MS-SPS stem (identical names in both official codes)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        D, C = cfg.embed_dim, cfg.in_channels
        chans = [C, D // 8, D // 4, D // 2, D]
        for i in range(4):
            sfx = "" if i == 0 else str(i)
            setattr(self, f"proj_conv{sfx}",
                    nn.Conv2d(chans[i], chans[i + 1], 3, stride=1, padding=1, bias=False))
            setattr(self, f"proj_bn{sfx}", nn.BatchNorm2d(chans[i + 1]))
            setattr(self, f"proj_lif{sfx}", make_lif(cfg))
            pool = nn.MaxPool2d(3, stride=2, padding=1) if cfg.pooling[i] == "1" else nn.Identity()
            setattr(self, f"maxpool{sfx}", pool)
        self.rpe_conv = nn.Conv2d(D, D, 3, stride=1, padding=1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(D)
        self.rpe_lif = make_lif(cfg)

    def stage(self, i: int) -> tuple[nn.Conv2d, nn.BatchNorm2d, LIF, nn.Module]:
        sfx = "" if i == 0 else str(i)
        return (getattr(self, f"proj_conv{sfx}"), getattr(self, f"proj_bn{sfx}"),
                getattr(self, f"proj_lif{sfx}"), getattr(self, f"maxpool{sfx}"))


class SPS(_SPSBase):
    """Spikformer's Spiking Patch Splitting stem (imagenet/model.py, class SPS).

    [T, B, C, H, W] -> tokens [T, B, N, D] (binary stage output + RPE spikes: values 0..2).
    Each stage: Conv3x3 + BN + LIF (+ MaxPool 3/s2 where ``pooling`` says); then
    x = x + LIF(BN(RPEConv3x3(x))).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(4):
            conv, bn, lif, pool = self.stage(i)
            x = _pool(lif(_conv_bn(x, conv, bn)), pool)
        x = x + self.rpe_lif(_conv_bn(x, self.rpe_conv, self.rpe_bn))
        return spatial_to_tokens(x)


class MSSPS(_SPSBase):
    """Spike-driven Transformer's MS-SPS stem (module/sps.py, class MS_SPS).

    [T, B, C, H, W] -> tokens [T, B, N, D] of membrane-shortcut (pre-spike, real) values:
    stages 0-2 are Conv + BN + LIF (+ pool); stage 3 is Conv + BN (+ pool) = x_feat; then
    x = BN(RPEConv(LIF(x_feat))) + x_feat.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(3):
            conv, bn, lif, pool = self.stage(i)
            x = _pool(lif(_conv_bn(x, conv, bn)), pool)
        conv, bn, lif, pool = self.stage(3)
        x_feat = _pool(_conv_bn(x, conv, bn), pool)
        x = _conv_bn(lif(x_feat), self.rpe_conv, self.rpe_bn) + x_feat
        return spatial_to_tokens(x)


class SpikformerMLP(nn.Module):
    """Spikformer MLP: LIF(BN(fc2(LIF(BN(fc1(x)))))), tokens [T, B, N, D] -> [T, B, N, D].

    Official: imagenet/model.py class MLP (1x1 convs; CIFAR code: Linear). Output is spikes.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        D, Hd = cfg.embed_dim, cfg.mlp_hidden
        self.fc1_linear = nn.Linear(D, Hd)
        self.fc1_bn = nn.BatchNorm1d(Hd)
        self.fc1_lif = make_lif(cfg)
        self.fc2_linear = nn.Linear(Hd, D)
        self.fc2_bn = nn.BatchNorm1d(D)
        self.fc2_lif = make_lif(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1_lif(_linear_bn(x, self.fc1_linear, self.fc1_bn))
        return self.fc2_lif(_linear_bn(x, self.fc2_linear, self.fc2_bn))


class SDTMLP(nn.Module):
    """Spike-driven Transformer MLP with membrane shortcut (module/ms_conv.py, MS_MLP_Conv).

    tokens [T, B, N, D] (pre-spike values) -> [T, B, N, D]:
    h = BN(fc1(LIF(x))) (+ x when hidden == D); y = BN(fc2(LIF(h))) + identity.
    The residual is inside the module, as in the official code.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        D, Hd = cfg.embed_dim, cfg.mlp_hidden
        self.res = D == Hd
        self.fc1_lif = make_lif(cfg)
        self.fc1_linear = nn.Linear(D, Hd)
        self.fc1_bn = nn.BatchNorm1d(Hd)
        self.fc2_lif = make_lif(cfg)
        self.fc2_linear = nn.Linear(Hd, D)
        self.fc2_bn = nn.BatchNorm1d(D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        h = _linear_bn(self.fc1_lif(x), self.fc1_linear, self.fc1_bn)
        if self.res:
            h = identity + h
            identity = h
        return _linear_bn(self.fc2_lif(h), self.fc2_linear, self.fc2_bn) + identity
