"""stats.collect / sop against hand-computed formulas and brute-force product counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from stc.models import create_model
from stc.models.stats import _dsformer_counts, _sdsa_counts, _ssa_counts, collect, sop
from stc.nn import LIF


class ConvFcNet(nn.Module):
    """[T, B, 2, 6, 6] -> conv3x3(2->4, pad 1) -> LIF -> flatten -> fc(144->5) -> LIF."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.lif1 = LIF(backend="torch")
        self.fc = nn.Linear(144, 5)
        self.lif2 = LIF(backend="torch")

    def forward(self, x):
        T, B = x.shape[:2]
        y = self.conv(x.flatten(0, 1)).reshape(T, B, 4, 6, 6)
        s = self.lif1(y)
        return self.lif2(self.fc(s.flatten(2)))


def test_conv_fc_sop_matches_hand_formula():
    torch.manual_seed(0)
    net = ConvFcNet()
    with torch.no_grad():
        net.conv.weight.copy_(torch.randn(4, 2, 3, 3) * 0.5 + 0.1)
    T, B = 3, 2
    x = torch.rand(T, B, 2, 6, 6)
    recs = {r.name: r for r in collect(net, x)}
    assert [recs[n].kind for n in ("conv", "lif1", "fc", "lif2")] == ["conv", "neuron", "fc",
                                                                     "neuron"]
    # Hand formulas: FL_conv = k^2 * h * w * c_in * c_out; FL_fc = i * o (per step, sample).
    assert recs["conv"].flops == 9 * 6 * 6 * 2 * 4
    assert recs["fc"].flops == 144 * 5
    assert recs["conv"].is_encoding_layer and not recs["fc"].is_encoding_layer
    with torch.no_grad():
        s1 = net.lif1(net.conv(x.flatten(0, 1)).reshape(T, B, 4, 6, 6))
        s2 = net.lif2(net.fc(s1.flatten(2)))
    fr = float(s1.mean())                      # binary spikes: nonzero fraction = mean
    assert 0.05 < fr < 0.95
    assert recs["fc"].in_firing_rate == pytest.approx(fr)
    assert recs["lif1"].out_firing_rate == pytest.approx(fr)
    assert recs["lif2"].out_firing_rate == pytest.approx(float(s2.mean()))
    assert recs["lif1"].flops == 4 * 36 and recs["lif2"].flops == 5
    assert all(r.T == T for r in recs.values())
    # SOP excludes the encoding conv (counted as MACs) and neuron records.
    assert sop(list(recs.values())) == pytest.approx(fr * T * 144 * 5)


def _brute(q, k, v, kind, window=1, ratio=1.0):
    """Count nonzero scalar products by explicit loops over the definitions."""
    T, B, H, N, d = q.shape
    count = 0
    for b in range(B):
        for h in range(H):
            if kind == "ssa":
                for t in range(T):
                    Q, K, V = q[t, b, h], k[t, b, h], v[t, b, h]
                    M = K.T @ V
                    count += sum(int(K[n, i] != 0 and V[n, j] != 0) for n in range(N)
                                 for i in range(d) for j in range(d))
                    count += sum(int(Q[n, i] != 0 and M[i, j] != 0) for n in range(N)
                                 for i in range(d) for j in range(d))
            elif kind == "sdsa":
                kv = (k[:, b, h] * v[:, b, h]).sum(1)          # [T, d]
                mem, s = torch.zeros(d), []
                for t in range(T):                            # LIF, v_th 0.5, hard reset
                    hh = mem + (kv[t] - mem) / 2
                    st = (hh >= 0.5).float()
                    mem = hh * (1 - st)
                    s.append(st)
                for t in range(T):
                    count += int(((k[t, b, h] * v[t, b, h]) != 0).sum())
                    count += int(((q[t, b, h] * s[t]) != 0).sum())
            else:
                for t0 in range(0, T, window):
                    ts = range(t0, min(T, t0 + window))
                    Q = torch.cat([q[t, b, h] for t in ts])
                    K = torch.cat([k[t, b, h] for t in ts])
                    V = torch.cat([v[t, b, h] for t in ts])
                    L = Q.shape[0]
                    S = Q @ K.T
                    keep = max(1, math.ceil(ratio * L))
                    for r in range(L):
                        kth = sorted(S[r].tolist(), reverse=True)[keep - 1]
                        for c in range(L):
                            count += sum(int(Q[r, i] != 0 and K[c, i] != 0) for i in range(d))
                            if S[r, c] >= kth and S[r, c] != 0:
                                count += int((V[c] != 0).sum())
    return count


@pytest.mark.parametrize("kind", ["ssa", "sdsa", "dsformer"])
def test_attention_products_match_brute_force(kind):
    g = torch.Generator().manual_seed(3)
    T, B, H, N, d = 3, 2, 2, 4, 3
    q, k, v = ((torch.rand(T, B, H, N, d, generator=g) < 0.4).float() for _ in range(3))
    if kind == "ssa":
        nz, dense = _ssa_counts(q, k, v)
        assert dense == 2 * T * B * H * N * d * d
    elif kind == "sdsa":
        nz, dense = _sdsa_counts(q, k, v)
        assert dense == 2 * T * B * H * N * d
    else:
        nz, dense = _dsformer_counts(q, k, v, window_size=2, sparse_ratio=0.5)
    want = _brute(q, k, v, kind, window=2, ratio=0.5)
    assert nz == want and 0 < nz < dense


@pytest.mark.parametrize("name", ["spikformer_tiny", "sdt_tiny", "dsformer_tiny"])
def test_model_records_cover_every_layer(name):
    torch.manual_seed(0)
    model = create_model(name, backend="torch").eval()
    x = torch.rand(2, 1, 8, 8)
    recs = collect(model, x)
    kinds = {r.kind for r in recs}
    assert kinds == {"conv", "fc", "attention", "neuron"}
    enc = [r.name for r in recs if r.is_encoding_layer]
    assert enc == ["patch_embed.proj_conv"]
    n_linear = sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
    assert sum(r.kind in ("conv", "fc") for r in recs) == n_linear
    for r in recs:
        assert 0.0 <= r.in_firing_rate <= 1.0 and r.T == model.config.T
    head = next(r for r in recs if r.name == "head")
    assert head.flops == model.config.embed_dim * 10
    attn = next(r for r in recs if r.kind == "attention")
    N, D = model.config.num_tokens, model.config.embed_dim
    d = D // model.config.num_heads
    if name == "sdt_tiny":
        assert attn.flops == 2 * N * D
    elif name == "spikformer_tiny":
        assert attn.flops == 2 * N * D * d
    total = sum(r.in_firing_rate * r.T * r.flops for r in recs
                if r.kind != "neuron" and not r.is_encoding_layer)
    assert sop(recs) == pytest.approx(total)


def test_collect_rejects_bad_input():
    model = create_model("sdt_tiny", backend="torch")
    with pytest.raises(TypeError):
        collect(model, [1, 2, 3])
    with pytest.raises(TypeError):
        sop("records")
