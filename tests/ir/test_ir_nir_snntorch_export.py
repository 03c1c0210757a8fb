"""NIR graphs exported by snnTorch's own exporter run in stc and match snnTorch's simulation.

The graph comes from ``snntorch.export_nir.export_to_nir`` (snnTorch 1.0, nirtorch 2.6, nir
1.0.8), is written with ``nir.write``, read back by stc's NIR frontend (``load_nir``) and run
by ``stc.runtime.execute`` (torch kernels, CPU); the reference is the very same snnTorch
network object stepped over T time steps. The ``stc bundle file.nir`` path is checked too.

The exporter call that works::

    export_to_nir(net, torch.rand(1, *sample_shape), ignore_dims=[0])

with every ``snn.Leaky`` / ``snn.Synaptic`` built with *per-neuron* tensors ``beta``,
``alpha`` and ``threshold`` of the layer's shape. Why, from the 1.0 sources:

* without ``ignore_dims=[0]`` the batch dimension of the sample lands in the NIR Input type
  ([1, 4]) while the first Affine expects [4]: ``nir.NIRGraph.infer_types`` (called at the end
  of ``export_to_nir``) raises "type mismatch: input.output: [[1 4]] -> 0.input: [[4]]";
* with scalar ``beta``/``threshold`` the exported ``nir.LIF`` has 0-d parameters, so its
  type is ``[]`` and ``infer_types`` raises "type mismatch: 0.output: [[5]] -> 1.input: []".

The exporter hard-codes dt = 1e-4 s (tau = dt / (1 - beta), r = tau / dt; CubaLIF
w_in = tau_syn / dt), so stc reads the file with ``dt=1e-4``. NIR neurons reset to v_reset
(= 0) in the step they fire and the exporter does not record snnTorch's reset mechanism, so
the snnTorch networks use ``reset_mechanism="zero", reset_delay=False`` (snnTorch's default
"subtract" with delayed reset is a different model that the exported file cannot express).

Tolerance: spike trains must be identical (mismatch bound 0). stc computes
v <- v - (dt/tau) v + (dt r/tau) x where snnTorch computes v <- beta v + x; both are float32
and differ by a few ulp (~1e-7 relative), so a spike could only flip where the membrane lies
within that distance of the threshold. Each test records snnTorch's pre-reset membrane and
asserts the closest approach to threshold is > 1e-4, so exact equality is the right
expectation for these inputs and not luck of rounding.
"""

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch import utils as snn_utils
from snntorch.export_nir import export_to_nir
from torch import nn
from typer.testing import CliRunner

from stc.cli.main import app
from stc.ir.frontends import load_nir
from stc.runtime import execute, load_bundle

DT = 1e-4  # snnTorch's exporter hard-codes this time step
T = 20
MARGIN = 1e-4


def leaky(shape, beta, th, output=False):
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, th),
                     reset_mechanism="zero", reset_delay=False, init_hidden=True, output=output)


def export(net: nn.Module, sample_shape, path):
    graph = export_to_nir(net, torch.rand(1, *sample_shape), ignore_dims=[0])
    nir.write(path, graph)
    return path


def snntorch_run(net: nn.Module, x: torch.Tensor):
    """Step ``net`` over x [T, B, ...]; returns (output spikes [T, B, N], min |v - v_th| over
    every spiking layer's pre-reset membrane)."""
    gaps = []
    for m in net.modules():
        if isinstance(m, snn.SpikingNeuron):
            def fire(mem, m=m, orig=m.fire):
                gaps.append((mem - m.threshold).abs().min())
                return orig(mem)
            m.fire = fire
    snn_utils.reset(net)
    out = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            y = net(x[t])
            out.append(y[0] if isinstance(y, tuple) else y)
    return torch.stack(out), float(torch.stack(gaps).min())


def check(net, sample_shape, x, tmp_path):
    path = export(net, sample_shape, tmp_path / "net.nir")
    g = load_nir(path, dt=DT)
    got = execute(g, {"input": x}).outputs["output"]
    want, gap = snntorch_run(net, x)
    assert gap > MARGIN
    assert 0 < want.sum() < want.numel()  # some but not all neurons fire
    assert got.shape == want.shape
    assert torch.equal(got, want), f"{int((got != want).sum())} of {want.numel()} differ"
    return path, want


def test_linear_leaky_export(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), leaky((8,), 0.8, 1.0),
                        nn.Linear(8, 4), leaky((4,), 0.9, 0.5, output=True))
    check(net, (6,), torch.rand(T, 3, 6) * 3, tmp_path)


def test_linear_synaptic_export(tmp_path):
    torch.manual_seed(1)
    syn = snn.Synaptic(alpha=torch.full((5,), 0.7), beta=torch.full((5,), 0.85),
                       threshold=torch.ones(5), reset_mechanism="zero", reset_delay=False,
                       init_hidden=True, output=True)
    net = nn.Sequential(nn.Linear(4, 5), syn)
    path = export(net, (4,), tmp_path / "net.nir")
    assert type(nir.read(path).nodes["1"]).__name__ == "CubaLIF"
    check(net, (4,), torch.rand(T, 3, 4) * 2, tmp_path)


def test_conv_leaky_flatten_linear_export(tmp_path):
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), leaky((2, 5, 5), 0.8, 0.6),
                        nn.Flatten(), nn.Linear(50, 4), leaky((4,), 0.9, 0.5, output=True))
    check(net, (1, 5, 5), torch.rand(T, 2, 1, 5, 5) * 3, tmp_path)


def test_stc_bundle_of_exported_nir(tmp_path):
    torch.manual_seed(7)
    net = nn.Sequential(nn.Linear(6, 8), leaky((8,), 0.8, 1.0),
                        nn.Linear(8, 4), leaky((4,), 0.9, 0.5, output=True))
    x = torch.rand(T, 3, 6) * 3
    path, want = check(net, (6,), x, tmp_path)
    out = tmp_path / "x.stcb"
    r = CliRunner().invoke(app, ["bundle", str(path), "--dt", str(DT), "-o", str(out)])
    assert r.exit_code == 0, r.output
    exe = load_bundle(out)
    got = exe.infer({"input": x.transpose(0, 1).numpy()})["output"]  # batch first
    np.testing.assert_array_equal(got, want.transpose(0, 1).numpy())


def test_documented_export_pitfalls():
    """The two failures the module docstring explains (snnTorch 1.0 / nir 1.0.8): the batch
    dimension in the Input type, and 0-d neuron parameters from scalar beta/threshold."""
    per_neuron = nn.Sequential(nn.Linear(4, 5), leaky((5,), 0.8, 1.0, output=True))
    with pytest.raises(ValueError, match=r"input.output: \[\[1 4\]\] -> 0.input: \[\[4\]\]"):
        export_to_nir(per_neuron, torch.rand(1, 4))
    scalar = nn.Sequential(nn.Linear(4, 5), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    with pytest.raises(ValueError, match=r"0.output: \[\[5\]\] -> 1.input: \[\]"):
        export_to_nir(scalar, torch.rand(1, 4), ignore_dims=[0])
