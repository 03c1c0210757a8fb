"""NIR out (stc.ir.nir_export, ``stc export``): stc graphs written as NIR are imported by
snnTorch (``snntorch.import_nir.import_from_nir``, which steps at dt = 1e-4) and produce the
same output spikes as stc's runtime; reading the file back into stc at the written dt
reproduces the original graph's spikes; what NIR cannot express is refused by name.

Norse cannot be installed here (norse 1.1.0 ships only an sdist that pip cannot resolve for
this Python 3.11 / torch 2.13 environment), so Norse is not a peer in these tests.

Exact spike equality is the right expectation: stc computes H = V (1 - 1/tau) + X/tau in
float32 and snnTorch V = beta V + X with a threshold scaled by tau (its importer's
w_scale), so the two agree up to a few ulp and a spike could flip only where the membrane
lies within that distance of the threshold; each test checks the closest approach.
"""

import nir
import numpy as np
import pytest
import torch
from snntorch.import_nir import import_from_nir
from torch import nn
from typer.testing import CliRunner

from stc.cli.main import app
from stc.errors import MappingError
from stc.ir.frontends import from_nir, from_torch
from stc.ir.nir_export import to_nir, write_nir
from stc.nn import IF, LIF
from stc.runtime import execute

DT = 1e-4
T = 20


def _mlp():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 5), LIF(tau=2.0, backend="torch"), nn.Linear(5, 3),
                      LIF(tau=4.0, decay_input=False, backend="torch")).eval()
    with torch.no_grad():
        m[0].weight.mul_(3)
        m[2].weight.mul_(2)
    return m


def _cnn():
    torch.manual_seed(1)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), LIF(tau=2.0, backend="torch"),
                      nn.Flatten(), nn.Linear(4 * 5 * 5, 3), LIF(tau=2.0, backend="torch"))
    with torch.no_grad():
        m[0].weight.mul_(2)
        m[3].weight.mul_(12)
    return m.eval()


def _snntorch_run(ng, x):
    """snnTorch's imported network stepped T times, one unbatched sample at a time: its
    importer applies NIR's per-sample Flatten dims to the tensor as given, so samples go in
    without a batch axis ([C, H, W] / [F])."""
    per_sample = []
    for xi in x:
        net = import_from_nir(ng)
        outs = []
        with torch.no_grad():
            state = None
            for _ in range(T):
                y, state = net(xi) if state is None else net(xi, state)
                outs.append(y)
        per_sample.append(torch.stack(outs))
    return torch.stack(per_sample, dim=1)


def _margin(g, x):
    """Closest approach of any membrane H to its threshold (float64 re-simulation)."""
    best = np.inf
    h = x.double().unsqueeze(0).expand(T, *x.shape)
    for n in g.nodes[2:]:
        if n.OP == "Linear":
            h = h @ g.param(n, "weight").double().T + g.param(n, "bias").double()
        elif n.OP == "Conv2d":
            h = torch.nn.functional.conv2d(h.flatten(0, 1), g.param(n, "weight").double(),
                                           g.param(n, "bias").double(),
                                           padding=n.padding).unflatten(0, (T, -1))
        elif n.OP == "Flatten":
            h = h.flatten(2)
        elif n.OP == "LIF":
            v = torch.zeros_like(h[0])
            out = []
            for t in range(T):
                hh = v + ((h[t] - v) / n.tau if n.decay_input else h[t] - v / n.tau)
                best = min(best, float((hh - n.v_th).abs().min()))
                s = (hh >= n.v_th).double()
                v = hh * (1 - s)
                out.append(s)
            h = torch.stack(out)
    return best


@pytest.mark.parametrize("make,shape", [(_mlp, (6,)), (_cnn, (1, 5, 5))])
def test_snntorch_import_matches_stc_spikes(make, shape, capsys):
    g = from_torch(make(), shape, time_steps=T, readout="spikes")
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(5)) * 2
    ours = execute(g, {"input": x}).outputs["output"]
    theirs = _snntorch_run(to_nir(g, dt=DT), x)
    assert 0 < ours.sum() < ours.numel()
    assert _margin(g, x) > 1e-5  # float32 paths differ by ~1e-7 (a few ulp)
    assert torch.equal(ours, theirs)


def test_file_round_trip_reproduces_stc(tmp_path):
    g = from_torch(_mlp(), (6,), time_steps=T, readout="spikes")
    p = write_nir(g, tmp_path / "m.nir", dt=DT)
    back = nir.read(p)
    assert back.metadata["dt"] == DT
    g2 = from_nir(back, None)  # dt from the file's metadata
    x = torch.rand(3, 6, generator=torch.Generator().manual_seed(6)) * 2
    want = execute(g, {"input": x}).outputs["output"]
    got = execute(g2, {"input": x.unsqueeze(0).expand(T, 3, 6)}).outputs["output"]
    assert torch.equal(want, got)


def test_recurrent_graph_round_trip():
    """snnTorch RLeaky export -> stc -> NIR (a neuron <-> Linear cycle) -> stc: same spikes."""
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(2)
    rl = snn.RLeaky(beta=torch.full((5,), 0.8), linear_features=5, threshold=torch.ones(5),
                    reset_mechanism="zero", reset_delay=False, init_hidden=True)
    g = from_nir(export_to_nir(nn.Sequential(nn.Linear(4, 5), rl), torch.rand(1, 4),
                               ignore_dims=[0]), dt=DT)
    ng = to_nir(g, dt=DT)
    assert any(type(v).__name__ in ("Linear", "Affine") and k.endswith("__rec")
               for k, v in ng.nodes.items())
    g2 = from_nir(ng, None)
    x = torch.rand(T, 3, 4, generator=torch.Generator().manual_seed(3)) * 2
    a = execute(g, {g.inputs()[0].name: x}).outputs[g.outputs()[0].name]
    b = execute(g2, {g2.inputs()[0].name: x}).outputs[g2.outputs()[0].name]
    assert a.sum() > 0
    assert torch.equal(a, b)


def test_refusals_name_the_node():
    from stc.ir.frontends.models import from_model
    from stc.models import create_model

    g = from_model(create_model("spikformer_tiny"), time_steps=2)
    with pytest.raises(MappingError, match=r"SpikeAttention\): spiking self-attention"):
        to_nir(g)
    soft = from_torch(nn.Sequential(nn.Linear(3, 2), IF(v_reset=None)).eval(), (3,))
    with pytest.raises(MappingError, match="reset by subtraction"):
        to_nir(soft)


def test_cli_export(tmp_path):
    from stc.compiler import SpikeCompiler

    p = SpikeCompiler("cpu", 2, time_steps=4).compile(_mlp(), (6,)).save(tmp_path / "m.stcb")
    r = CliRunner().invoke(app, ["export", str(p), "-o", str(tmp_path / "m.nir")])
    assert r.exit_code == 0, r.output
    ng = nir.read(tmp_path / "m.nir")
    assert {type(v).__name__ for v in ng.nodes.values()} >= {"Affine", "LIF"}
    from stc.models import create_model

    a = SpikeCompiler("cpu", 2, time_steps=2).compile(create_model("spikformer_tiny"))
    a.save(tmp_path / "a.stcb")
    r = CliRunner().invoke(app, ["export", str(tmp_path / "a.stcb"), "-o",
                                 str(tmp_path / "a.nir")])
    assert r.exit_code == 2 and "SpikeAttention" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "a.nir").exists()
