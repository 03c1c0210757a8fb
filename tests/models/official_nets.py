"""Independent re-implementations of the official module structures, for key-map tests.

Written from reading ZK-Zhou/spikformer imagenet/model.py and BICLab/Spike-Driven-Transformer
(model/spikeformer.py, module/ms_conv.py, module/sps.py): same attribute names, same tensor
layouts ([T, B, C, H, W] with 1x1 Conv1d/Conv2d over channels) and the same operation order;
the neurons are SpikingJelly's own LIFNode (multi-step), not stc's LIF. Not a copy of that
code: only what the key map and the forward semantics need.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron
from torch import nn


class SJLIF(nn.Module):
    """SpikingJelly LIFNode(tau=2, v_reset=0, detach_reset) over [T, ...], reset every call."""

    def __init__(self, v_th: float = 1.0) -> None:
        super().__init__()
        self.node = neuron.LIFNode(tau=2.0, v_threshold=v_th, detach_reset=True, step_mode="m")

    def forward(self, x):
        self.node.reset()
        out = self.node(x)
        self.node.reset()
        return out


class SJPLIF(nn.Module):
    """SpikingJelly ParametricLIFNode(init_tau=2, detach_reset) over [T, ...]; its learnable
    ``w`` sits at ``<name>.w`` as in the official code (MultiStepParametricLIFNode)."""

    def __init__(self, v_th: float = 1.0) -> None:
        super().__init__()
        self.node = neuron.ParametricLIFNode(init_tau=2.0, v_threshold=v_th, detach_reset=True,
                                             step_mode="m")

    def _load_from_state_dict(self, sd, prefix, *args, **kwargs):  # official name: <lif>.w
        if prefix + "w" in sd:
            sd[prefix + "node.w"] = sd.pop(prefix + "w")
        super()._load_from_state_dict(sd, prefix, *args, **kwargs)

    def forward(self, x):
        self.node.reset()
        out = self.node(x)
        self.node.reset()
        return out


def official_state_dict(net: nn.Module) -> dict:
    """net.state_dict() with SJPLIF's ``node.w`` renamed to the official ``w``."""
    import re

    return {re.sub(r"(_lif\d?)\.node\.w\Z", r"\1.w", k): v
            for k, v in net.state_dict().items()}


def erode(x):
    """The official Erode: nn.MaxPool3d((1, 3, 3), stride 1, padding (0, 1, 1)) on 5-D x."""
    return nn.functional.max_pool3d(x, (1, 3, 3), stride=1, padding=(0, 1, 1))


def _tb(fn, x):
    """Apply a 2-D op to [T, B, ...] by folding T into B."""
    T, B = x.shape[:2]
    y = fn(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])


class OfficialStem(nn.Module):
    """SPS (sdt=False) or MS_SPS (sdt=True) with a pooling_stat string."""

    def __init__(self, cin, D, pooling, sdt, lif=SJLIF):
        super().__init__()
        self.pooling, self.sdt = pooling, sdt
        chans = [cin, D // 8, D // 4, D // 2, D]
        for i in range(4):
            s = "" if i == 0 else str(i)
            setattr(self, "proj_conv" + s, nn.Conv2d(chans[i], chans[i + 1], 3, 1, 1, bias=False))
            setattr(self, "proj_bn" + s, nn.BatchNorm2d(chans[i + 1]))
            setattr(self, "proj_lif" + s, lif())
            setattr(self, "maxpool" + s, nn.MaxPool2d(3, 2, 1))
        self.rpe_conv = nn.Conv2d(D, D, 3, 1, 1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(D)
        self.rpe_lif = lif()

    def _g(self, name, i):
        return getattr(self, name + ("" if i == 0 else str(i)))

    def forward(self, x):
        last = 3 if self.sdt else 4
        for i in range(last):
            x = _tb(lambda z, i=i: self._g("proj_bn", i)(self._g("proj_conv", i)(z)), x)
            x = self._g("proj_lif", i)(x)
            if self.pooling[i] == "1":
                x = _tb(self._g("maxpool", i), x)
        if self.sdt:
            x = _tb(lambda z: self.proj_bn3(self.proj_conv3(z)), x)
            if self.pooling[3] == "1":
                x = _tb(self.maxpool3, x)
            feat = x
            x = _tb(lambda z: self.rpe_bn(self.rpe_conv(z)), self.proj_lif3(x))
            return x + feat
        feat = x
        x = self.rpe_lif(_tb(lambda z: self.rpe_bn(self.rpe_conv(z)), x))
        return x + feat


class OfficialSSA(nn.Module):
    """Spikformer imagenet SSA: Conv1d over channels on [T*B, C, N]."""

    def __init__(self, dim, heads, scale=0.125):
        super().__init__()
        self.heads, self.scale = heads, scale
        for p in "qkv":
            setattr(self, f"{p}_conv", nn.Conv1d(dim, dim, 1, 1, bias=False))
            setattr(self, f"{p}_bn", nn.BatchNorm1d(dim))
            setattr(self, f"{p}_lif", SJLIF())
        self.attn_lif = SJLIF(0.5)
        self.proj_conv = nn.Conv1d(dim, dim, 1, 1)
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = SJLIF()

    def forward(self, x):
        T, B, C, H, W = x.shape
        xf = x.flatten(3).flatten(0, 1)  # [TB, C, N]
        N = H * W

        def heads(p):
            y = getattr(self, f"{p}_bn")(getattr(self, f"{p}_conv")(xf)).reshape(T, B, C, N)
            y = getattr(self, f"{p}_lif")(y)
            return y.transpose(-1, -2).reshape(T, B, N, self.heads, C // self.heads) \
                .permute(0, 1, 3, 2, 4)

        q, k, v = heads("q"), heads("k"), heads("v")
        a = (q @ (k.transpose(-2, -1) @ v)) * self.scale
        a = self.attn_lif(a.transpose(3, 4).reshape(T, B, C, N))
        y = self.proj_bn(self.proj_conv(a.flatten(0, 1))).reshape(T, B, C, H, W)
        return self.proj_lif(y)


class OfficialMLP(nn.Module):
    """Spikformer imagenet MLP (sdt=False) or SDT MS_MLP_Conv (sdt=True), 1x1 Conv2d."""

    def __init__(self, dim, hidden, sdt, lif=SJLIF):
        super().__init__()
        self.sdt = sdt
        self.fc1_conv = nn.Conv2d(dim, hidden, 1, 1)
        self.fc1_bn = nn.BatchNorm2d(hidden)
        self.fc1_lif = lif()
        self.fc2_conv = nn.Conv2d(hidden, dim, 1, 1)
        self.fc2_bn = nn.BatchNorm2d(dim)
        self.fc2_lif = lif()

    def forward(self, x):
        if not self.sdt:
            x = self.fc1_lif(_tb(lambda z: self.fc1_bn(self.fc1_conv(z)), x))
            return self.fc2_lif(_tb(lambda z: self.fc2_bn(self.fc2_conv(z)), x))
        identity = x
        x = _tb(lambda z: self.fc1_bn(self.fc1_conv(z)), self.fc1_lif(x))
        x = _tb(lambda z: self.fc2_bn(self.fc2_conv(z)), self.fc2_lif(x))
        return x + identity


class OfficialSDSA(nn.Module):
    """SDT MS_SSA_Conv (spike_mode lif or plif, dvs False or True): residual inside, Conv2d
    over channels; dvs applies Erode to k, v ([T, B, C, H, W]) and to k*v, q*kv
    ([T, B, heads, N, d])."""

    def __init__(self, dim, heads, lif=SJLIF, dvs=False):
        super().__init__()
        self.heads, self.dvs = heads, dvs
        for p in "qkv":
            setattr(self, f"{p}_conv", nn.Conv2d(dim, dim, 1, 1, bias=False))
            setattr(self, f"{p}_bn", nn.BatchNorm2d(dim))
            setattr(self, f"{p}_lif", lif())
        self.attn_lif = lif(0.5)
        self.talking_heads = nn.Conv1d(heads, heads, 1, 1, bias=False)
        self.talking_heads_lif = lif(0.5)
        self.proj_conv = nn.Conv2d(dim, dim, 1, 1)
        self.proj_bn = nn.BatchNorm2d(dim)
        self.shortcut_lif = lif()

    def forward(self, x):
        T, B, C, H, W = x.shape
        N = H * W
        identity = x
        s = self.shortcut_lif(x)

        def heads(p):
            y = _tb(lambda z: getattr(self, f"{p}_bn")(getattr(self, f"{p}_conv")(z)), s)
            y = getattr(self, f"{p}_lif")(y)
            if self.dvs and p != "q":
                y = erode(y)
            return y.flatten(3).transpose(-1, -2).reshape(T, B, N, self.heads, C // self.heads) \
                .permute(0, 1, 3, 2, 4)

        q, k, v = heads("q"), heads("k"), heads("v")
        kv = k * v
        if self.dvs:
            kv = erode(kv)
        kv = self.talking_heads_lif(kv.sum(dim=-2, keepdim=True))
        a = q * kv
        if self.dvs:
            a = erode(a)
        a = a.transpose(3, 4).reshape(T, B, C, H, W)
        return _tb(lambda z: self.proj_bn(self.proj_conv(z)), a) + identity


def _lin_bn(linear, bn, x):
    """CIFAR code: Linear on [TB, N, C], BatchNorm1d on the transposed [TB, C, N]."""
    T, B, N, _ = x.shape
    y = linear(x.flatten(0, 1))
    return bn(y.transpose(-1, -2)).transpose(-1, -2).reshape(T, B, N, -1)


class CifarSSA(nn.Module):
    """Spikformer cifar10/model.py SSA: nn.Linear with biases, tokens [T, B, N, C],
    attention evaluated as (q @ k^T) @ v."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        for p in "qkv":
            setattr(self, f"{p}_linear", nn.Linear(dim, dim))
            setattr(self, f"{p}_bn", nn.BatchNorm1d(dim))
            setattr(self, f"{p}_lif", SJLIF())
        self.attn_lif = SJLIF(0.5)
        self.proj_linear = nn.Linear(dim, dim)
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = SJLIF()

    def forward(self, x):
        T, B, N, C = x.shape

        def heads(p):
            y = getattr(self, f"{p}_lif")(
                _lin_bn(getattr(self, f"{p}_linear"), getattr(self, f"{p}_bn"), x))
            return y.reshape(T, B, N, self.heads, C // self.heads).permute(0, 1, 3, 2, 4)

        q, k, v = heads("q"), heads("k"), heads("v")
        a = ((q @ k.transpose(-2, -1)) * 0.125) @ v
        a = self.attn_lif(a.transpose(2, 3).reshape(T, B, N, C))
        return self.proj_lif(_lin_bn(self.proj_linear, self.proj_bn, a))


class CifarMLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1_linear = nn.Linear(dim, hidden)
        self.fc1_bn = nn.BatchNorm1d(hidden)
        self.fc1_lif = SJLIF()
        self.fc2_linear = nn.Linear(hidden, dim)
        self.fc2_bn = nn.BatchNorm1d(dim)
        self.fc2_lif = SJLIF()

    def forward(self, x):
        x = self.fc1_lif(_lin_bn(self.fc1_linear, self.fc1_bn, x))
        return self.fc2_lif(_lin_bn(self.fc2_linear, self.fc2_bn, x))


class OfficialBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, sdt, cifar=False, lif=SJLIF, dvs=False,
                 scale=0.125):
        super().__init__()
        self.sdt, self.cifar = sdt, cifar
        if not sdt:
            self.norm1 = nn.LayerNorm(dim)  # built but unused, as in the official Block
            self.norm2 = nn.LayerNorm(dim)
        if cifar:
            self.attn, self.mlp = CifarSSA(dim, heads), CifarMLP(dim, int(dim * mlp_ratio))
            return
        self.attn = OfficialSDSA(dim, heads, lif, dvs) if sdt else \
            OfficialSSA(dim, heads, scale)
        self.mlp = OfficialMLP(dim, int(dim * mlp_ratio), sdt, lif)

    def forward(self, x):
        if self.sdt:
            return self.mlp(self.attn(x))
        x = x + self.attn(x)
        return x + self.mlp(x)


class OfficialNet(nn.Module):
    """Spikformer (sdt=False; ImageNet code, or CIFAR code with cifar=True, or CIFAR10-DVS
    code with dvs=True: pos_embed and a final LayerNorm built but unused, SSA scale 0.25) or
    SpikeDrivenTransformer (sdt=True; plif=True for spike_mode "plif", dvs=True for
    dvs_mode): [B, C, H, W] -> [B, K]; event input [B, T, C, H, W] (the official layout)."""

    def __init__(self, cin, D, heads, depths, mlp_ratio, num_classes, pooling, T, sdt,
                 cifar=False, plif=False, dvs=False):
        super().__init__()
        self.T, self.sdt, self.cifar = T, sdt, cifar
        lif = SJPLIF if plif else SJLIF
        self.patch_embed = OfficialStem(cin, D, pooling, sdt, lif)
        scale = 0.25 if dvs and not sdt else 0.125
        self.block = nn.ModuleList(OfficialBlock(D, heads, mlp_ratio, sdt, cifar, lif,
                                                 dvs and sdt, scale) for _ in range(depths))
        if dvs and not sdt:
            self.pos_embed = nn.Parameter(torch.zeros(1, 4, D))
            self.norm = nn.LayerNorm(D)
        if sdt:
            self.head_lif = lif()
        self.head = nn.Linear(D, num_classes)

    def forward(self, x):
        if x.dim() == 5:               # events [B, T, C, H, W], as the official forward
            x = x.transpose(0, 1).contiguous()
        else:
            x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        x = self.patch_embed(x)
        if self.cifar:                 # the CIFAR code's blocks work on tokens [T, B, N, C]
            x = x.flatten(3).transpose(-1, -2)
            for blk in self.block:
                x = blk(x)
            return self.head(x.mean(2).mean(0))
        for blk in self.block:
            x = blk(x)
        x = x.flatten(3).mean(3)  # [T, B, D]
        if self.sdt:
            return self.head(self.head_lif(x)).mean(0)
        return self.head(x.mean(0))


def randomise(model: nn.Module, seed: int = 0, bn_shift: float = 0.0) -> nn.Module:
    """Random weights and BN statistics (BN bias in [bn_shift, bn_shift + 0.6]) so that
    layers fire; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 2.0 / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.6 + bn_shift)
                m.num_batches_tracked.fill_(7)
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
            elif isinstance(m, neuron.ParametricLIFNode):  # learned tau in (1.25, 5)
                m.w.copy_(torch.rand((), generator=g) * 2.6 - 1.4)
        for name, p in model.named_parameters():
            if name.endswith("pos_embed"):
                p.copy_(torch.randn(p.shape, generator=g))
    return model.eval()
