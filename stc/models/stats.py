"""Per-layer operation and spike statistics of a model on a batch, for energy estimates.

``collect(model, x)`` runs one forward pass with hooks and returns one ``LayerStats`` per
conv / fc / attention / neuron layer (the record contract of CONTRIBUTING.md, "Models", read
by stc.energy). Counting rules (shared/reference/energy.md, attention.md):

- conv: FLOPs = k_h * k_w * (c_in / groups) * c_out * h_out * w_out; fc: i * o per token.
  Both per timestep and per sample. ``in_firing_rate`` = fraction of nonzero input elements
  (for integer-valued residual sums this counts a value > 1 as one event).
- attention: FLOPs = the dense products of the spike matrix products per timestep and sample;
  ``in_firing_rate`` = (nonzero products actually formed) / (dense products), so that
  fr * T * FLOPs is exactly the number of nonzero products (accumulates) per sample.
  SSA: K^T V then Q (K^T V); SDSA: K (.) V then Q (.) SN(sum_N K (.) V); DSFormer: Q_w K_w^T
  then S_sparse V_w per temporal window.
- neuron: FLOPs = neurons updated per timestep per sample; ``out_firing_rate`` = mean spike
  count per neuron per timestep (the firing rate for binary spikes).
- the first conv/fc to run sees the real-valued image: ``is_encoding_layer=True`` (MACs).

SOP(l) = fr(l) * T * FLOPs(l) (Spikformer appendix; SDT Eq. of E_SDT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from stc.errors import check_tensor

LAYER_KINDS = ("conv", "fc", "attention", "neuron")


@dataclass
class LayerStats:
    """Statistics of one layer for one forward pass, normalised per sample.

    Attributes:
        name: module path, e.g. "block.0.attn.q_linear" (attention: the attention module).
        kind: "conv" | "fc" | "attention" | "neuron".
        flops: operations per timestep per sample (see module docstring).
        in_firing_rate: fraction of nonzero inputs in [0, 1] (attention: of products formed).
        T: timesteps.
        is_encoding_layer: True for the layer that receives the real-valued image.
        out_firing_rate: neuron layers: mean spikes per neuron per timestep; else None.
    """

    name: str
    kind: str
    flops: float
    in_firing_rate: float
    T: int
    is_encoding_layer: bool = False
    out_firing_rate: float | None = None

    @property
    def sop(self) -> float:
        """fr * T * FLOPs: this layer's synaptic operations per sample (for the encoding layer
        the papers count ``flops * T`` MACs instead: ``encoding_macs``)."""
        return self.in_firing_rate * self.T * self.flops


def sop(records: list) -> float:
    """Total synaptic operations (ACs) per sample: SUM fr * T * FLOPs over conv, fc and
    attention records that are not the encoding layer (reference/energy.md).

    Raises:
        TypeError: records is not a list of objects with the record fields.
    """
    if not isinstance(records, (list, tuple)):
        raise TypeError(f"records must be a list of LayerStats, got {type(records).__name__}")
    total = 0.0
    for r in records:
        for f in ("kind", "flops", "in_firing_rate", "T", "is_encoding_layer"):
            if not hasattr(r, f):
                raise TypeError(f"records: {type(r).__name__} has no field {f!r}")
        if r.kind in ("conv", "fc", "attention") and not r.is_encoding_layer:
            total += float(r.in_firing_rate) * int(r.T) * float(r.flops)
    return total


def encoding_macs(records: list) -> float:
    """MACs per sample of the encoding layer(s): FLOPs * T (the papers' E_MAC term with T)."""
    return sum(float(r.flops) * int(r.T) for r in records if r.is_encoding_layer)


def firing_rates(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Output firing rate (mean spikes per neuron per timestep) of every neuron layer."""
    return {r.name: float(r.out_firing_rate) for r in collect(model, x) if r.kind == "neuron"}


def _nnz(x: torch.Tensor) -> torch.Tensor:
    return (x != 0).to(torch.float64)


# The counts below stay on the model's device (0-d float64 tensors, exact below 2**53);
# ``collect`` reads them all back once, at the end of the pass (no host sync per layer).

def _ssa_counts(q, k, v) -> tuple[torch.Tensor, float]:
    """(nonzero, dense) products of q @ (k^T @ v) over [T, B, H, N, d]."""
    T, B, H, N, d = q.shape
    nk, nv, nq = _nnz(k), _nnz(v), _nnz(q)
    kv_nz = (nk.sum(-1) * nv.sum(-1)).sum()                       # sum_n nnz(k_n) nnz(v_n)
    m = k.transpose(-2, -1).to(torch.float64) @ v.to(torch.float64)  # [.., d, d]
    q_nz = (nq.sum(-2) * _nnz(m).sum(-1)).sum()                    # sum_i nnz(q_:i) nnz(M_i:)
    dense = 2.0 * T * B * H * N * d * d
    return kv_nz + q_nz, dense


def _sdsa_counts(q, k, v) -> tuple[torch.Tensor, float]:
    """(nonzero, dense) products of Q (.) SN_0.5(sum_N K (.) V)."""
    from stc.kernels.lif import lif_multistep

    T, B, H, N, d = q.shape
    kv = k * v
    s, _ = lif_multistep(kv.sum(-2, keepdim=True).float().contiguous(), v_th=0.5,
                         backend="torch")
    nz = _nnz(kv).sum() + _nnz(q * s).sum()
    return nz, 2.0 * T * B * H * N * d


def _dsformer_counts(q, k, v, window_size: int,
                     sparse_ratio: float) -> tuple[torch.Tensor, float]:
    """(nonzero, dense) products of Q_w K_w^T and S_sparse V_w per temporal window."""
    T, B, H, N, d = q.shape
    nz, dense = torch.zeros((), dtype=torch.float64, device=q.device), 0.0
    for t0 in range(0, T, window_size):
        w = min(window_size, T - t0)

        def flat(a, t0=t0, w=w):  # [w, B, H, N, d] -> [B, H, wN, d]
            return a[t0:t0 + w].permute(1, 2, 0, 3, 4).reshape(B, H, w * N, d).double()

        qw, kw, vw = flat(q), flat(k), flat(v)
        L = w * N
        nz = nz + (_nnz(qw).sum(-2) * _nnz(kw).sum(-2)).sum()      # sum_i nnzQ_i nnzK_i
        s = qw @ kw.transpose(-2, -1)                                  # [B, H, L, L]
        keep = max(1, math.ceil(sparse_ratio * L))
        kth = s.topk(keep, dim=-1).values[..., -1:]
        s_sparse = torch.where(s >= kth, s, torch.zeros_like(s))
        nz = nz + (_nnz(s_sparse) * _nnz(vw).sum(-1).unsqueeze(-2)).sum()
        dense += 2.0 * B * H * L * L * d
    return nz, dense


class _Collector:
    def __init__(self, model: nn.Module, T: int, B: int) -> None:
        self.T, self.B = T, B
        self.records: dict[str, LayerStats] = {}
        self.order: list[str] = []
        self.handles = []
        self.qkv: dict[str, dict[str, torch.Tensor]] = {}
        self.sums: dict[str, list] = {}   # name -> [nonzero (device), inputs, spikes (device)]
        self.seen_encoding = False
        from stc.nn import LIF
        from stc.nn.attention import SDSA, SSA, DSFormerAttention, GradedLIF

        from .sdt import SDSAOfficial

        attn_types = (SSA, SDSA, DSFormerAttention, SDSAOfficial)
        for name, mod in model.named_modules():
            if isinstance(mod, attn_types):
                self.qkv[name] = {}
                for part in ("q", "k", "v"):
                    child = getattr(mod, f"{part}_lif")
                    self.handles.append(child.register_forward_hook(self._qkv_hook(name, part)))
                self.handles.append(mod.register_forward_hook(self._attn_hook(name)))
            if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                self.handles.append(mod.register_forward_hook(self._synapse_hook(name)))
            elif isinstance(mod, (LIF, GradedLIF)):
                self.handles.append(mod.register_forward_hook(self._neuron_hook(name)))

    def _add(self, name, kind, flops, nz, dense, enc=False, out_spikes=None) -> None:
        """Accumulate (a module may run more than once): FLOPs add, rates are pooled.
        ``nz`` and ``out_spikes`` are 0-d device tensors, summed on the device."""
        per = self.T * self.B
        rec = self.records.get(name)
        if rec is None:
            rec = self.records[name] = LayerStats(name, kind, 0.0, 0.0, self.T, enc, None)
            self.sums[name] = [0.0, 0.0, None]    # nonzero inputs, inputs, output spikes
            self.order.append(name)
        acc = self.sums[name]
        acc[0] = acc[0] + nz
        acc[1] += dense
        rec.flops += flops / per
        if out_spikes is not None:
            acc[2] = out_spikes if acc[2] is None else acc[2] + out_spikes

    def finish(self) -> list[LayerStats]:
        """Read every accumulated count back in one transfer and fill the rates."""
        vals, slots = [], []
        for name in self.order:
            for i in (0, 2):
                v = self.sums[name][i]
                if isinstance(v, torch.Tensor):
                    slots.append((name, i))
                    vals.append(v.detach().to(torch.float64).reshape(()))
        host = {}
        if vals:
            dev = vals[0].device
            host = dict(zip(slots, torch.stack([v.to(dev) for v in vals]).tolist(),
                            strict=True))
        for name in self.order:
            rec, acc = self.records[name], self.sums[name]
            nz = host.get((name, 0), acc[0])
            rec.in_firing_rate = float(nz) / acc[1] if acc[1] else 0.0
            if acc[2] is not None:
                rec.out_firing_rate = host[(name, 2)] / acc[1] if acc[1] else 0.0
        return [self.records[name] for name in self.order]

    def _synapse_hook(self, name):
        def hook(mod, inp, out):
            x = inp[0]
            if isinstance(mod, nn.Linear):
                per_out, kind = mod.in_features, "fc"
            else:
                k = math.prod(mod.kernel_size)
                per_out, kind = k * mod.in_channels // mod.groups, "conv"
            enc = not self.seen_encoding
            self.seen_encoding = True
            self._add(name, kind, float(out.numel() * per_out), _nnz(x).sum(),
                      float(x.numel()), enc=enc)
        return hook

    def _neuron_hook(self, name):
        def hook(mod, inp, out):
            self._add(name, "neuron", float(out.numel()), _nnz(inp[0]).sum(),
                      float(out.numel()), out_spikes=out.double().sum())
        return hook

    def _qkv_hook(self, name, part):
        def hook(mod, inp, out):
            self.qkv[name][part] = out.detach()
        return hook

    def _attn_hook(self, name):
        from stc.nn.attention import SDSA, DSFormerAttention, split_heads

        from .sdt import SDSAOfficial

        def hook(mod, inp, out):
            q, k, v = (split_heads(self.qkv[name][p], mod.num_heads) for p in ("q", "k", "v"))
            if isinstance(mod, DSFormerAttention):
                nz, dense = _dsformer_counts(q, k, v, mod.window_size, mod.sparse_ratio)
            elif isinstance(mod, (SDSA, SDSAOfficial)):  # dvs Erode pools: comparisons only,
                nz, dense = _sdsa_counts(q, k, v)      # counted from the LIF outputs
            else:
                nz, dense = _ssa_counts(q, k, v)
            self._add(name, "attention", dense, nz, dense)
        return hook


@torch.no_grad()
def collect(model: nn.Module, x: torch.Tensor) -> list[LayerStats]:
    """Run ``model(x)`` once with hooks; return per-layer stats in execution order.

    Args:
        model: an stc model (``create_model``) or any module made of nn.Conv1d/Conv2d/Linear,
            stc LIF/GradedLIF and stc attention modules.
        x: images [B, C, H, W] (T taken from ``model.config.T``) or encoded [T, B, C, H, W]
            (any other module: [T, B, ...] with T from dim 0).

    Returns:
        list[LayerStats]: conv / fc / attention / neuron records, per timestep per sample.
        The counts accumulate on x's device and are read back once, after the forward.

    Raises:
        TypeError: x not a tensor. ValueError: x of rank < 2.
    """
    check_tensor("x", x, min_dim=2)
    cfg = getattr(model, "config", None)
    if cfg is not None and x.dim() == 4:
        T, B = int(cfg.T), int(x.shape[0])
    else:
        T, B = int(x.shape[0]), int(x.shape[1])
    col = _Collector(model, T, B)
    try:
        model(x)
    finally:
        for h in col.handles:
            h.remove()
    return col.finish()
