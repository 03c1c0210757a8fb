"""Torch frontend: the IR graph, run by stc.runtime, equals the module run step by step."""

import pytest
import torch
from stc.kernels.lif.reference import lif_reference
from torch import nn

from stc.errors import MappingError
from stc.ir.frontends import from_torch
from stc.nn import LIF
from stc.runtime import execute


def multistep_reference(model: nn.Sequential, x: torch.Tensor, T: int) -> torch.Tensor:
    """Independent loop: stateless layers per timestep, neurons via lif_reference over T."""
    xs = [x for _ in range(T)]
    for m in model:
        if isinstance(m, LIF):
            s, _ = lif_reference(torch.stack(xs), m.tau, m.v_th, m.v_reset, m.decay_input)
            xs = list(s)
        else:
            xs = [m(z) for z in xs]
    return torch.stack(xs).mean(0)


def cnn() -> nn.Sequential:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), LIF(backend="torch"),
                      nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, stride=1, padding=1, groups=2),
                      LIF(tau=3.0, v_reset=None, backend="torch"), nn.AvgPool2d(2),
                      nn.Flatten(), nn.Dropout(0.1), nn.Linear(16, 5), nn.BatchNorm1d(5),
                      LIF(backend="torch", decay_input=False))
    with torch.no_grad():
        for mod in m:
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 2.0)
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.mul_(3.0)
    return m.eval()


def test_cnn_graph_runs_like_the_module():
    m = cnn()
    g = from_torch(m, (1, 8, 8), time_steps=5)
    assert [n.OP for n in g.nodes][:4] == ["Input", "Repeat", "Conv2d", "BatchNorm"]
    x = torch.rand(3, 1, 8, 8) * 2
    with torch.no_grad():
        want = multistep_reference(m, x, 5)
        res = execute(g, {"input": x})
    got = res.outputs["output"]
    assert got.shape == (3, 5)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert res.firing_rates and all(0 <= r <= 1 for r in res.firing_rates.values())
    assert sum(res.spike_counts.values()) > 0


def test_unsupported_layers_are_listed():
    m = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2), nn.Softmax(-1))
    with pytest.raises(MappingError, match=r"1 \(GELU\).*3 \(Softmax\)"):
        from_torch(m, (4,))


def test_bad_arguments():
    with pytest.raises(TypeError, match="model"):
        from_torch("net", (4,))
    with pytest.raises(ValueError, match="input_shape"):
        from_torch(nn.Sequential(nn.Linear(4, 2)), (0,))
    with pytest.raises(ValueError, match="time_steps"):
        from_torch(nn.Sequential(nn.Linear(4, 2)), (4,), time_steps=0)


def test_stc_cubalif_and_if_neurons():
    """stc.nn.CubaLIF (hard reset) and IF (soft reset) through the IR against the modules.
    The IR CubaLIF multiplies by 1/tau where the module divides by tau, so a membrane landing
    exactly on v_th could round differently: allow a 0.2 % spike mismatch at most."""
    from stc.nn import ALIF, IF, CubaLIF

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 40), CubaLIF(tau_syn=3.0, tau_mem=4.0, v_leak=0.1,
                                                backend="torch"),
                      nn.Linear(40, 5), IF(v_th=0.7, v_reset=None, backend="torch")).eval()
    with torch.no_grad():
        m[0].weight.mul_(4)
        m[2].weight.mul_(2)
    g = from_torch(m, (6,), time_steps=20, readout="spikes")
    x = torch.rand(16, 6)
    with torch.no_grad():
        s1 = m[1](m[0](x).expand(20, 16, 40).contiguous())
        s2 = m[3](m[2](s1))
    res = execute(g, {"input": x}, record_spikes=True)
    assert s1.mean() > 0.01 and s2.mean() > 0.01
    assert (res.spike_trains["cubalif_1"] != s1).float().mean() <= 0.002
    assert (res.outputs["output"] != s2).float().mean() <= 0.002
    with pytest.raises(MappingError, match="ALIF"):
        from_torch(nn.Sequential(nn.Linear(3, 3), ALIF(backend="torch")), (3,))
