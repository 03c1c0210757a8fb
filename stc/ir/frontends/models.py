"""Frontend for stc.models: Spikformer, Spike-driven Transformer (SDT v1) and DSFormer.

The walk follows the models' forward passes (stc/models/spikformer.py, sdt.py, layers.py)
node by node, so the IR graph computes the same function:
    images [B, C, H, W] -> Repeat(T) -> stem (SPS or MS-SPS: Conv2d, BatchNorm, LIF,
    Pool2d max 3/2/1, Add) -> ToTokens -> blocks (SpikeAttention, Add, MLP of Linear +
    token BatchNorm + LIF) -> TokenMean (-> LIF for SDT) -> head Linear -> TimeMean -> Output.
"""

from __future__ import annotations

from torch import nn

from stc.errors import MappingError
from stc.ir import nodes as ir
from stc.ir.graph import Graph


def is_stc_model(model: nn.Module) -> bool:
    """True for models built by stc.models (they carry a ``config`` with an ``arch``)."""
    return hasattr(model, "config") and hasattr(model.config, "arch")


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _Builder:
    def __init__(self, g: Graph) -> None:
        self.g = g

    def add(self, node: ir.Node, inputs: list[str], **tensors) -> str:
        node.inputs = list(inputs)
        self.g.add(node, **tensors)
        return node.name

    def conv_bn(self, name: str, x: str, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> str:
        c = self.add(ir.Conv2d(name=f"{name}.conv", in_channels=conv.in_channels,
                               out_channels=conv.out_channels,
                               kernel_size=tuple(conv.kernel_size), stride=tuple(conv.stride),
                               padding=tuple(conv.padding), dilation=tuple(conv.dilation),
                               groups=conv.groups), [x], weight=conv.weight, bias=conv.bias)
        return self.bn(f"{name}.bn", c, bn, axis=0)

    def bn(self, name: str, x: str, bn, axis: int) -> str:
        return self.add(ir.BatchNorm(name=name, num_features=bn.num_features, eps=bn.eps,
                                     axis=axis), [x], running_mean=bn.running_mean,
                        running_var=bn.running_var, weight=bn.weight, bias=bn.bias)

    def linear_bn(self, name: str, x: str, lin: nn.Linear, bn: nn.BatchNorm1d) -> str:
        y = self.add(ir.Linear(name=f"{name}.linear", in_features=lin.in_features,
                               out_features=lin.out_features), [x],
                     weight=lin.weight, bias=lin.bias)
        return self.bn(f"{name}.bn", y, bn, axis=-1)

    def lif(self, name: str, x: str, m) -> str:
        return self.add(ir.LIF(name=name, tau=float(m.tau), v_th=float(m.v_th),
                               v_reset=m.v_reset, decay_input=bool(m.decay_input)), [x])

    def pool(self, name: str, x: str, m: nn.Module) -> str:
        if isinstance(m, nn.Identity):
            return x
        k, s, p = (getattr(m, a) for a in ("kernel_size", "stride", "padding"))
        return self.add(ir.Pool2d(name=name, kind="max", kernel_size=_pair(k),
                                  stride=_pair(s or k), padding=_pair(p)), [x])

    def attention(self, name: str, x: str, m: nn.Module, kind: str) -> str:
        node = ir.SpikeAttention(
            name=name, kind=kind, dim=int(getattr(m, "dim", 0) or m.embed_dim),
            num_heads=int(m.num_heads), scale=float(getattr(m, "scale", 0.125)),
            spike_mode=str(getattr(m, "spike_mode", "binary")),
            window_size=int(getattr(m, "window_size", 1)),
            sparse_ratio=float(getattr(m, "sparse_ratio", 1.0)),
            max_level=int(getattr(m, "max_level", 4)))
        return self.add(node, [x], **dict(m.state_dict()))


def from_model(model: nn.Module, time_steps: int | None = None) -> Graph:
    """Convert an stc.models network (eval mode is applied) into a verified IR graph.

    Args:
        model: Spikformer, SpikeDrivenTransformer or DSFormer from stc.models.
        time_steps: T of the direct encoder (default ``model.config.T``).

    Raises:
        MappingError: an unknown architecture or a module layout the walk does not know.
    """
    cfg = model.config
    arch = cfg.arch
    if arch not in ("spikformer", "sdt", "dsformer"):
        raise MappingError(f"unknown stc.models arch {arch!r}")
    if getattr(cfg, "dvs_mode", False) or getattr(cfg, "neuron", "lif") != "lif":
        raise MappingError("SDT with dvs_mode=True or neuron='plif' runs in PyTorch "
                           "(stc.models); the IR's SDSA node has no Erode max-pools or "
                           "parametric LIFs, so it is not compiled")
    model = model.eval()
    T = int(time_steps or cfg.T)
    g = Graph(metadata={"source": "stc.models", "model": type(model).__name__,
                        "config": cfg.to_dict()})
    b = _Builder(g)
    try:
        x = b.add(ir.Input(name="input", shape=(cfg.in_channels, cfg.img_size, cfg.img_size)),
                  [])
        x = b.add(ir.Repeat(name="encoder", time_steps=T), [x])
        pe = model.patch_embed
        n_lif = 3 if arch == "sdt" else 4
        for i in range(n_lif):
            conv, bn, lif, pool = pe.stage(i)
            x = b.pool(f"patch_embed.pool{i}",
                       b.lif(f"patch_embed.lif{i}",
                             b.conv_bn(f"patch_embed.stage{i}", x, conv, bn), lif), pool)
        if arch == "sdt":
            conv, bn, lif, pool = pe.stage(3)
            feat = b.pool("patch_embed.pool3", b.conv_bn("patch_embed.stage3", x, conv, bn),
                          pool)
            r = b.conv_bn("patch_embed.rpe", b.lif("patch_embed.lif3", feat, lif),
                          pe.rpe_conv, pe.rpe_bn)
            x = b.add(ir.Add(name="patch_embed.rpe_add"), [r, feat])
        else:
            r = b.lif("patch_embed.rpe_lif", b.conv_bn("patch_embed.rpe", x, pe.rpe_conv,
                                                        pe.rpe_bn), pe.rpe_lif)
            x = b.add(ir.Add(name="patch_embed.rpe_add"), [x, r])
        x = b.add(ir.ToTokens(name="tokens"), [x])
        kind = {"spikformer": "ssa", "dsformer": "dsformer", "sdt": "sdsa"}[arch]
        for i, blk in enumerate(model.block):
            p = f"block{i}"
            a = b.attention(f"{p}.attn", x, blk.attn, kind)
            x = b.add(ir.Add(name=f"{p}.attn_add"), [x, a])
            mlp = blk.mlp
            if arch == "sdt":
                identity = x
                h = b.linear_bn(f"{p}.mlp.fc1", b.lif(f"{p}.mlp.fc1_lif", x, mlp.fc1_lif),
                                mlp.fc1_linear, mlp.fc1_bn)
                if mlp.res:
                    h = b.add(ir.Add(name=f"{p}.mlp.res"), [identity, h])
                    identity = h
                y = b.linear_bn(f"{p}.mlp.fc2", b.lif(f"{p}.mlp.fc2_lif", h, mlp.fc2_lif),
                                mlp.fc2_linear, mlp.fc2_bn)
                x = b.add(ir.Add(name=f"{p}.mlp_add"), [y, identity])
            else:
                h = b.lif(f"{p}.mlp.fc1_lif", b.linear_bn(f"{p}.mlp.fc1", x, mlp.fc1_linear,
                                                          mlp.fc1_bn), mlp.fc1_lif)
                y = b.lif(f"{p}.mlp.fc2_lif", b.linear_bn(f"{p}.mlp.fc2", h, mlp.fc2_linear,
                                                          mlp.fc2_bn), mlp.fc2_lif)
                x = b.add(ir.Add(name=f"{p}.mlp_add"), [x, y])
        x = b.add(ir.TokenMean(name="token_mean"), [x])
        if arch == "sdt":
            x = b.lif("head_lif", x, model.head_lif)
        head = model.head
        x = b.add(ir.Linear(name="head", in_features=head.in_features,
                            out_features=head.out_features), [x],
                  weight=head.weight, bias=head.bias)
        x = b.add(ir.TimeMean(name="time_mean"), [x])
        b.add(ir.Output(name="output"), [x])
    except AttributeError as e:
        raise MappingError(f"{type(model).__name__}: module layout not recognised ({e})") \
            from None
    return g.infer_shapes().verify()
