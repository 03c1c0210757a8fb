"""The original design's encoder and neuron words: RateCoding, PoissonCoding (against
SpikingJelly's PoissonEncoder), AdaptiveEncoder (against a per-element loop), AdLifNeuron."""

import math

import pytest
import torch

from stc.nn import ALIF, AdaptiveEncoder, AdLifNeuron, PoissonCoding, RateCoding


def test_adlif_is_alif():
    assert AdLifNeuron is ALIF


def test_rate_and_poisson_rates_match_the_formula_and_spikingjelly():
    x = torch.tensor([[0.0, 0.1, 0.5, 0.9, 1.0]])
    T = 4000
    s = RateCoding(T, seed=0)(x)
    assert s.shape == (T, 1, 5) and set(s.unique().tolist()) <= {0.0, 1.0}
    tol = 4 * math.sqrt(0.25 / T)  # 4 sigma of a Bernoulli mean
    assert torch.allclose(s.mean(0), x, atol=tol)
    p = PoissonCoding(T, max_rate=200.0, dt=1e-3, seed=0)(x)
    assert torch.allclose(p.mean(0), x * 0.2, atol=tol)
    from spikingjelly.activation_based import encoding

    torch.manual_seed(0)
    enc = encoding.PoissonEncoder()
    sj = torch.stack([enc(x) for _ in range(T)])
    same = PoissonCoding(T, max_rate=1000.0, dt=1e-3, seed=1)(x)  # docstring: = SpikingJelly
    assert torch.allclose(sj.mean(0), same.mean(0), atol=2 * tol)
    with pytest.raises(ValueError, match="max_rate"):
        PoissonCoding(4, max_rate=2000.0)


def loop_encode(x, theta, T):
    out = torch.zeros(T, *x.shape)
    for idx in range(x.numel()):
        v = 0.0
        for t in range(T):
            v += float(x.view(-1)[idx])
            if v >= theta:
                out.view(T, -1)[t, idx] = 1.0
                v -= theta
    return out


def test_adaptive_threshold_encoder_matches_a_loop_and_decodes_within_theta_over_T():
    x = torch.rand(3, 7, generator=torch.Generator().manual_seed(0)) * 2
    enc = AdaptiveEncoder("threshold", time_steps=10, adaptation_rate=0.5,
                          target_sparsity=0.8, threshold=0.7)
    s = enc.encode(x)
    torch.testing.assert_close(s, loop_encode(x, 0.7, 10))
    inside = x <= 0.7  # one spike per step at most: above theta it saturates at theta
    err = (x - enc.decode(s))[inside]
    assert float(err.min()) >= -1e-6 and float(err.max()) < 0.7 / 10
    torch.testing.assert_close(enc.decode(s)[~inside], torch.full_like(x[~inside], 0.7))


@pytest.mark.parametrize("kind", ["threshold", "rate"])
def test_adapt_reaches_the_target_sparsity(kind):
    x = torch.rand(64, 32, generator=torch.Generator().manual_seed(1))
    enc = AdaptiveEncoder(kind, time_steps=16, adaptation_rate=2.0, target_sparsity=0.9,
                          seed=0)
    first = enc.adapt(x)
    for _ in range(60):
        enc.adapt(x)
    rate = float(enc.encode(x).mean())
    assert abs(first - 0.1) > 0.1  # it started far from the target
    assert abs(rate - 0.1) < 0.015
    with pytest.raises(ValueError, match="non-negative"):
        enc.encode(-x)
    with pytest.raises(ValueError, match="target_sparsity"):
        AdaptiveEncoder(target_sparsity=1.0)


@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_lif_tau_must_exceed_one_like_spikingjelly(tau):
    from spikingjelly.activation_based import neuron

    from stc.nn import LIF

    with pytest.raises(AssertionError):  # the peer library refuses it as well
        neuron.LIFNode(tau=tau)
    with pytest.raises(ValueError, match="tau must be > 1"):
        LIF(tau=tau)
    with pytest.raises(ValueError, match="tau must be > 1"):
        ALIF(tau=tau)
    LIF(tau=1.01)
