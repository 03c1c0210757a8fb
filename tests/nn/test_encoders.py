"""Encoders: exact checks for direct/latency (formula and snnTorch as a peer), statistical
checks with fixed seeds for rate/Poisson (mean within a binomial tolerance), reproducibility."""

from __future__ import annotations

import math

import pytest
import torch

from stc.nn.encoders import SpikeEncoder, direct, latency, latency_times, poisson, rate


def test_direct_repeats_exactly():
    x = torch.randn(3, 2, 5)
    s = direct(x, 4)
    assert s.shape == (4, 3, 2, 5) and s.is_contiguous()
    for t in range(4):
        assert torch.equal(s[t], x)


def _tol(p: torch.Tensor, n: int) -> torch.Tensor:
    # 5 sigma of a binomial mean, plus a floor for p near 0 or 1
    return 5 * torch.sqrt(p * (1 - p) / n) + 1e-3


def test_rate_mean_matches_probability():
    x = torch.tensor([0.0, 0.05, 0.3, 0.5, 0.9, 1.0]).repeat(2, 1)  # [B=2, 6]
    T = 4000
    s = rate(x, T, seed=1)
    assert s.shape == (T, 2, 6) and set(s.unique().tolist()) <= {0.0, 1.0}
    mean = s.mean(dim=(0, 1))
    assert (mean - x[0]).abs().le(_tol(x[0], 2 * T)).all()
    assert mean[0] == 0 and mean[-1] == 1


def test_rate_clip_and_errors():
    x = torch.tensor([[-0.5, 1.5]])
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        rate(x, 3)
    s = rate(x, 50, clip=True, seed=0)
    assert s[:, 0, 0].sum() == 0 and s[:, 0, 1].sum() == 50
    with pytest.raises(ValueError, match="T must be >= 1"):
        rate(x.clamp(0, 1), 0)
    with pytest.raises(TypeError, match="T must be an int"):
        rate(x.clamp(0, 1), 2.0)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        rate([0.5], 2)
    with pytest.raises(ValueError, match="either generator or seed"):
        rate(x.clamp(0, 1), 2, seed=1, generator=torch.Generator())


def test_poisson_rate_in_hz():
    x = torch.tensor([[0.0, 0.25, 1.0]])
    T, max_rate, dt = 20000, 200.0, 1e-3
    s = poisson(x, T, max_rate=max_rate, dt=dt, seed=3)
    rate_hz = s.sum(0)[0] / (T * dt)                    # spikes per second
    expected = x[0] * max_rate
    p = expected * dt
    tol_hz = _tol(p, T) / dt
    assert (rate_hz - expected).abs().le(tol_hz).all(), (rate_hz, expected)
    with pytest.raises(ValueError, match="max_rate \\* dt"):
        poisson(x, 2, max_rate=2000.0, dt=1e-3)
    with pytest.raises(ValueError, match="dt must be > 0"):
        poisson(x, 2, dt=0.0)


def test_poisson_interspike_intervals_are_geometric():
    # a Bernoulli-per-bin Poisson process has geometric ISIs with mean 1 / p
    p = 0.1
    s = poisson(torch.full((1, 64), 1.0), 3000, max_rate=p / 1e-3, dt=1e-3, seed=5)
    isis = torch.cat([torch.diff(torch.nonzero(s[:, 0, j]).flatten()) for j in range(64)])
    assert abs(isis.float().mean().item() - 1 / p) < 5 * math.sqrt((1 - p) / p**2 / len(isis))


def test_seed_reproducible_and_distinct():
    x = torch.rand(2, 33)
    assert torch.equal(rate(x, 8, seed=7), rate(x, 8, seed=7))
    assert not torch.equal(rate(x, 8, seed=7), rate(x, 8, seed=8))
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(poisson(x, 8, max_rate=500.0, generator=g1),
                       poisson(x, 8, max_rate=500.0, generator=g2))


@pytest.mark.parametrize("linear,normalize", [(True, True), (True, False), (False, True),
                                              (False, False)])
def test_latency_formula(linear, normalize):
    x = torch.tensor([[0.0, 0.005, 0.02, 0.31, 0.5, 0.77, 1.0]])
    T, tau, thr = 9, 5.0, 0.01
    s = latency(x, T, tau=tau, threshold=thr, linear=linear, normalize=normalize)
    assert s.shape == (T, 1, 7) and s.sum(0).le(1).all()
    for j, xv in enumerate(x[0].tolist()):
        xe = max(xv, thr) if linear else max(xv, thr + 1e-7)
        if linear:
            t = ((T - 1) if normalize else tau) * (1 - xe)
        else:
            t = tau * math.log(xe / (xe - thr))
        times = [tau * math.log(max(v, thr + 1e-7) / (max(v, thr + 1e-7) - thr))
                 for v in x[0].tolist()]
        if normalize and not linear:
            t = t * (T - 1) / max(times)
        k = round(t)  # Python rounds half to even, as torch.round
        expected = [1.0 if (step == k) else 0.0 for step in range(T)]
        assert s[:, 0, j].tolist() == expected, (xv, t)
    # brighter fires no later than dimmer
    first = torch.where(s.any(0), s.argmax(0), T)[0]
    assert (first[1:] <= first[:-1]).all()


@pytest.mark.parametrize("linear,normalize,clip", [(True, True, True), (False, True, False),
                                                   (False, False, True)])
def test_latency_matches_snntorch(linear, normalize, clip):
    spikegen = pytest.importorskip("snntorch.spikegen")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 10, generator=g)
    T = 7
    ours = latency(x, T, tau=2.0, threshold=0.05, linear=linear, normalize=normalize, clip=clip)
    peer = spikegen.latency(x, num_steps=T, tau=2.0, threshold=0.05, linear=linear,
                            normalize=normalize, clip=clip, bypass=True)
    assert torch.equal(ours, peer.to(ours.dtype))
    assert torch.allclose(latency_times(x, T, tau=2.0, threshold=0.05, linear=linear,
                                        normalize=normalize),
                          spikegen.latency_code(x, num_steps=T, tau=2.0, threshold=0.05,
                                                linear=linear, normalize=normalize)[0])


def test_latency_errors():
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        latency(torch.tensor([1.2]), 4)
    with pytest.raises(ValueError, match="threshold"):
        latency(torch.tensor([0.2]), 4, threshold=1.0)
    with pytest.raises(ValueError, match="tau"):
        latency(torch.tensor([0.2]), 4, tau=0.0)


def test_spike_encoder_module():
    x = torch.rand(2, 3)
    assert torch.equal(SpikeEncoder("direct", T=3)(x), direct(x, 3))
    assert torch.equal(SpikeEncoder("rate", T=5, seed=2)(x), rate(x, 5, seed=2))
    with pytest.raises(ValueError, match="kind"):
        SpikeEncoder("burst")
