"""Quantisation to Loihi fixed point: integer formats, the error report, and bit-exact fixed
dynamics against an independent NumPy model of Lava's fixed_pt CUBA LIF."""

import numpy as np
import pytest
import torch
from torch import nn

from stc.errors import MappingError
from stc.ir.frontends import from_torch
from stc.nn import LIF
from stc.passes import fold_batchnorm, quantize
from stc.runtime import Executable


def mlp(seed=0, gain=4.0) -> nn.Sequential:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.BatchNorm1d(10), LIF(backend="torch"),
                      nn.Linear(10, 4), LIF(tau=4.0, backend="torch")).eval()
    with torch.no_grad():
        m[1].weight.mul_(gain)
        m[4].weight.mul_(gain)
        m[4].bias.add_(0.5)
    return m


def lava_numpy(layers, x_spikes):
    """Lava fixed_pt semantics in NumPy (lava.md) with Lava's pipeline latency removed (the
    runtime's delay-free timing): dense a[t] = W s[t], then CUBA LIF from rest with
    round-toward-zero decays, 24-bit u wrap, v saturation, strict threshold, reset to 0."""
    def decay(z, d):
        y = z * (4096 - d)
        return np.sign(y) * (np.abs(y) >> 12)

    s = x_spikes.astype(np.int64)  # [T, B, N]
    for w, bias, idec, vdec, vth in layers:
        a = np.einsum("tbi,oi->tbo", s, w.astype(np.int64))
        u = np.zeros_like(a[0])
        v = np.zeros_like(a[0])
        out = []
        for t in range(a.shape[0]):
            u = decay(u, idec) + (a[t] << 6)
            u = np.where(u > 2**23, u - 2**24, u)
            u = np.where(u <= -2**23, u + 2**24, u)
            v = np.clip(decay(v, vdec) + u + (bias.astype(np.int64) << 6), -2**23 + 1, 2**23 - 1)
            spk = v > (vth << 6)
            v = np.where(spk, 0, v)
            out.append(spk.astype(np.int64))
        s = np.stack(out)
    return s


def test_formats_and_report():
    g, _ = fold_batchnorm(from_torch(mlp(), (12,), time_steps=6))
    gen = torch.Generator().manual_seed(0)
    spikes = (torch.rand(8, 12, generator=gen) < 0.3).float()  # integer input, no contract
    q, rep = quantize(g, calibration=spikes, search=False)
    for layer in rep.layers:
        w_int = q.tensors[f"{layer['name']}.weight"]
        assert w_int.dtype == torch.int32
        assert int(w_int.min()) >= -256 and int(w_int.max()) <= 254
        assert bool((w_int % 2 == 0).all())
        # the reported error is the relative error of W_int * 2^exponent vs W / tau
        neuron = g.node(layer["neuron"])
        w = g.tensors[f"{layer['name']}.weight"].double() / neuron.tau
        deq = w_int.double() * 2.0 ** layer["exponent"]
        assert layer["weight_rel_error"] == pytest.approx(
            float((deq - w).norm() / w.norm()), rel=1e-9)
        assert layer["weight_rel_error"] < 0.02
        assert layer["v_th_mant"] == round(neuron.v_th * 2.0 ** -layer["exponent"])
        assert q.node(layer["neuron"]).v_decay == round(4096 / neuron.tau)
    assert set(rep.spike_agreement) == {"lif_3", "lif_5"}
    assert rep.overall_agreement > 0.9


def test_fixed_run_is_bit_exact_with_numpy_lava_model():
    g, _ = fold_batchnorm(from_torch(mlp(1, gain=8.0), (12,), time_steps=8, temporal_input=True,
                                     readout="spikes"))
    q, _ = quantize(g)
    torch.manual_seed(2)
    x = (torch.rand(3, 8, 12) < 0.4).float()  # [B, T, N] spikes
    ex = Executable(q, numerics="fixed")
    res = ex.run({"input": x}, record_spikes=True)
    got = res.outputs["output"].numpy()  # [T, B, 4]
    layers = []
    for syn, neu in (("linear_1", "lif_3"), ("linear_4", "lif_5")):
        n = q.node(neu)
        layers.append((q.tensors[f"{syn}.weight"].numpy(), q.tensors[f"{neu}.bias"].numpy(),
                       n.i_decay, n.v_decay, n.v_th_mant))
    want = lava_numpy(layers, x.transpose(0, 1).numpy())
    assert want.sum() > 0
    np.testing.assert_array_equal(got, want)


def test_unquantisable_graphs_are_refused():
    m = nn.Sequential(nn.Linear(4, 3), LIF(v_reset=None, backend="torch")).eval()
    with pytest.raises(MappingError, match="v_reset=None"):
        quantize(from_torch(m, (4,)))
    m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), LIF(backend="torch")).eval()
    with pytest.raises(MappingError, match="BatchNorm"):
        quantize(from_torch(m, (4,)))
    m = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 3), LIF(backend="torch")).eval()
    with pytest.raises(MappingError, match="linear_0"):
        quantize(from_torch(m, (4,)))


def test_calibration_search_never_lowers_agreement_on_its_samples():
    """The greedy per-layer search keeps the default unless a candidate agrees better with
    the float graph on the calibration samples; measured here independently per layer."""
    from stc.passes.quantize import CALIBRATION_SEARCH_SAMPLES
    from stc.runtime.interpreter import execute

    g, _ = fold_batchnorm(from_torch(mlp(3, gain=6.0), (12,), time_steps=6))
    gen = torch.Generator().manual_seed(5)
    x = (torch.rand(48, 12, generator=gen) < 0.4).float()
    assert len(x) <= CALIBRATION_SEARCH_SAMPLES
    q0, r0 = quantize(g, calibration=x, search=False)
    q1, r1 = quantize(g, calibration=x, labels=torch.zeros(48, dtype=torch.int64))
    assert set(r1.calibrated) == {"linear_1", "linear_4"}
    with torch.no_grad():
        ref = execute(g, {"input": x}, record_spikes=True).spike_trains
        s0 = execute(q0, {"input": x}, numerics="fixed", record_spikes=True).spike_trains
        s1 = execute(q1, {"input": x}, numerics="fixed", record_spikes=True).spike_trains
    first = "lif_3"  # the first layer's choice is made with nothing upstream changed
    a0 = float((s0[first] == ref[first]).double().mean())
    a1 = float((s1[first] == ref[first]).double().mean())
    assert a1 >= a0
    assert r1.spike_agreement[first] == pytest.approx(a1)
    assert r1.accuracy_float is not None and r1.samples == 48
    with pytest.raises(ValueError, match="labels must be integer class ids of shape \\[48\\]"):
        quantize(g, calibration=x, labels=torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ValueError, match="calibration data must have shape \\[B, 12\\]"):
        quantize(g, calibration=x.reshape(48, 3, 4))
