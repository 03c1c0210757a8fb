"""ModelConfig: the JSON-serialisable description of a spiking-transformer model.

One dataclass covers Spikformer (Zhou et al., ICLR 2023), the Spike-driven Transformer v1
(Yao et al., NeurIPS 2023) and stc's DSFormer (shared/reference/attention.md). The stem is the
official SPS / MS-SPS: four Conv3x3 + BN + LIF stages with channels D/8, D/4, D/2, D, each
optionally followed by MaxPool(3, stride 2); ``pooling`` is the official ``pooling_stat``
string ("1111" for 224 x 224 ImageNet, patch 16). Small inputs (8 x 8 digits) use e.g. "0001".
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from stc.errors import check_choice, check_positive

ARCHS = ("spikformer", "sdt", "dsformer")
SPIKE_MODES = ("binary", "graded")


@dataclass
class ModelConfig:
    """Hyper-parameters of a spiking transformer.

    Attributes:
        arch: "spikformer" | "sdt" | "dsformer".
        img_size: input height = width in pixels.
        in_channels: image channels C.
        num_classes: number of logits.
        embed_dim: token width D (divisible by 8 for the stem and by ``num_heads``).
        num_heads: attention heads H (head width d = D / H).
        depths: number of transformer blocks L.
        mlp_ratio: MLP hidden width / D (papers: 4).
        T: timesteps of direct encoding (papers: 4).
        pooling: 4 characters of "0"/"1": MaxPool(3, 2, 1) after stem stage i (official
            ``pooling_stat``). The token grid is img_size / 2**pooling.count("1") per side.
        tau: LIF membrane time constant in timesteps (official: 2.0).
        attn_scale: scale s of SSA / DSFormer attention (official: 0.125).
        window_size, sparse_ratio, spike_mode: DSFormer attention parameters.
        backend: "auto" | "triton" | "torch" for every LIF and attention op.
        qkv_bias: bias on the Q/K/V linears of SSA / DSFormer attention (False as Spikformer's
            ImageNet code; True for its CIFAR code's nn.Linear layers).
        dvs_mode: SDT only: the official ``dvs_mode=True`` of event-camera training
            (CIFAR10-DVS): SDSA applies a parameter-free 3x3 max-pool ("Erode") to k and v
            over the token grid and to k*v and q*kv over (tokens, head channels).
        neuron: "lif" (MultiStepLIFNode, fixed tau) or "plif" (ParametricLIF, learnable
            tau = 1 / sigmoid(w); SDT's ``spike_mode="plif"``; models' ``*_lif.w`` keys).
        extra: free-form JSON-serialisable metadata (not read by the models).

    Raises (``validate``, called on construction):
        ValueError naming the field: unknown arch/backend/spike_mode, non-positive sizes,
        embed_dim not divisible by num_heads or by 8, img_size not divisible by the patch grid.
    """

    arch: str = "spikformer"
    img_size: int = 224
    in_channels: int = 3
    num_classes: int = 1000
    embed_dim: int = 384
    num_heads: int = 12
    depths: int = 8
    mlp_ratio: float = 4.0
    T: int = 4
    pooling: str = "1111"
    tau: float = 2.0
    attn_scale: float = 0.125
    window_size: int = 1
    sparse_ratio: float = 1.0
    spike_mode: str = "binary"
    backend: str = "auto"
    qkv_bias: bool = False
    dvs_mode: bool = False
    neuron: str = "lif"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def patch_size(self) -> int:
        """Side of one token's receptive patch in pixels: 2 ** (number of pooling stages)."""
        return 2 ** self.pooling.count("1")

    @property
    def grid(self) -> int:
        """Tokens per side of the token grid (img_size / patch_size)."""
        return self.img_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """N = grid ** 2."""
        return self.grid ** 2

    @property
    def mlp_hidden(self) -> int:
        """MLP hidden width int(D * mlp_ratio), as in the official code."""
        return int(self.embed_dim * self.mlp_ratio)

    def validate(self) -> None:
        """Check every field; raise ValueError / TypeError naming the field and its value."""
        check_choice("arch", self.arch, ARCHS)
        check_choice("backend", self.backend, ("auto", "triton", "torch"))
        check_choice("spike_mode", self.spike_mode, SPIKE_MODES)
        check_choice("neuron", self.neuron, ("lif", "plif"))
        if not isinstance(self.dvs_mode, bool):
            raise TypeError(f"dvs_mode must be a bool, got {type(self.dvs_mode).__name__}")
        if (self.dvs_mode or self.neuron == "plif") and self.arch != "sdt":
            raise ValueError(f"dvs_mode / neuron='plif' are options of arch 'sdt' (the "
                             f"official Spike-driven Transformer); got arch {self.arch!r}")
        for name in ("img_size", "in_channels", "num_classes", "embed_dim", "num_heads",
                     "depths", "T", "window_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not isinstance(self.qkv_bias, bool):
            raise TypeError(f"qkv_bias must be a bool, got {type(self.qkv_bias).__name__}")
        check_positive("mlp_ratio", self.mlp_ratio)
        check_positive("tau", self.tau)
        check_positive("attn_scale", self.attn_scale)
        check_positive("sparse_ratio", self.sparse_ratio)
        if self.sparse_ratio > 1:
            raise ValueError(f"sparse_ratio must be in (0, 1], got {self.sparse_ratio}")
        if (not isinstance(self.pooling, str) or len(self.pooling) != 4
                or set(self.pooling) - {"0", "1"}):
            raise ValueError(f"pooling must be 4 characters of '0'/'1' (one per stem stage), "
                             f"got {self.pooling!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by num_heads "
                             f"({self.num_heads})")
        if self.embed_dim % 8:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by 8 (stem "
                             f"channels D/8, D/4, D/2, D)")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size ({self.img_size}) must be divisible by the patch size "
                             f"{self.patch_size} (2 ** pooling stages of {self.pooling!r})")

    def to_dict(self) -> dict:
        """Plain dict of every field (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """JSON text of ``to_dict()`` (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Build from a dict; unknown keys raise ValueError naming them."""
        if not isinstance(data, dict):
            raise TypeError(f"config must be a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}; expected a subset of "
                             f"{sorted(names)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Inverse of ``to_json``."""
        return cls.from_dict(json.loads(text))

    def replace(self, **overrides) -> ModelConfig:
        """A validated copy with some fields replaced (unknown names raise ValueError)."""
        data = self.to_dict()
        data.update(overrides)
        return ModelConfig.from_dict(data)
