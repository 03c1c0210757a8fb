"""The SpikingJelly baseline: same weights, SpikingJelly LIF, and the same predictions as stc."""

import pytest
import torch
from spikingjelly.activation_based import neuron

from stc.bench import spikingjelly_baseline, time_calls, time_paired
from stc.bench.baseline import SpikingJellyLIF
from stc.models import create_model
from stc.nn import LIF


def test_sj_lif_matches_hand_loop():
    # independent reference: the LIF recurrence written out (SpikingJelly's LIFNode equations)
    torch.manual_seed(0)
    x = torch.randn(5, 3, 7) * 2
    s = SpikingJellyLIF(tau=2.0, v_th=1.0, v_reset=0.0, decay_input=True, detach_reset=True)(x)
    v = torch.zeros(3, 7)
    for t in range(5):
        h = v + (x[t] - v) / 2.0
        spk = (h >= 1.0).float()
        assert torch.equal(s[t], spk)
        v = h * (1 - spk)
    # stateless: a second call gives the same spikes
    s2 = SpikingJellyLIF(2.0, 1.0, 0.0, True, True)(x)
    assert torch.equal(s, s2)


@pytest.mark.parametrize("name", ["sdt_tiny"])
def test_baseline_shares_weights_and_agrees(name):
    torch.manual_seed(0)
    model = create_model(name, backend="torch").eval()
    base = spikingjelly_baseline(model).eval()
    assert not any(isinstance(m, LIF) for m in base.modules())
    assert any(isinstance(m, neuron.LIFNode) for m in base.modules())
    assert any(isinstance(m, LIF) for m in model.modules())  # original untouched
    sd_m, sd_b = model.state_dict(), base.state_dict()
    for k, v in sd_m.items():
        assert torch.equal(v, sd_b[k]), k
    x = torch.rand(3, 1, 8, 8) * 4
    with torch.no_grad():
        y, yb = model(x), base(x)
    assert torch.allclose(y, yb, atol=1e-5)
    assert torch.equal(y.argmax(-1), yb.argmax(-1))


def test_baseline_rejects_non_spiking():
    with pytest.raises(ValueError, match="no stc.nn.LIF"):
        spikingjelly_baseline(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="nn.Module"):
        spikingjelly_baseline("model")


def test_time_calls_with_fake_clock():
    t = [0.0]
    durations = iter([9.0, 1.0, 3.0, 2.0, 5.0, 4.0])  # first one is the warm-up

    def fn():
        t[0] += next(durations)

    r = time_calls(fn, batch_size=4, warmup=1, repeats=5, clock=lambda: t[0])
    assert r.median_s == pytest.approx(3.0) and r.min_s == pytest.approx(1.0)
    assert r.p90_s == pytest.approx(5.0)
    assert r.throughput == pytest.approx(4 / 3.0)
    with pytest.raises(ValueError, match="batch_size"):
        time_calls(fn, batch_size=0)


def test_time_paired_interleaves():
    t = [0.0]
    order = []

    def make(name, dt):
        def fn():
            order.append(name)
            t[0] += dt
        return fn

    a, b = time_paired(make("a", 1.0), make("b", 2.0), batch_size=2, warmup=0, repeats=3,
                       clock=lambda: t[0])
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert a.median_s == pytest.approx(1.0) and b.median_s == pytest.approx(2.0)
