"""NIR import fixes: scalar conv bias, recurrent graphs (snnTorch RLeaky export vs snnTorch's
own simulation), I / CubaLI / Threshold / Delay / Conv1d against their discretised formulas,
parameter and dt checks, type_check=False reading, error messages, name collisions, and
peer-convention warnings."""

import h5py
import nir
import numpy as np
import pytest
import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

from stc.errors import MappingError
from stc.ir.frontends import from_nir, load_nir
from stc.ir.frontends.nir import NIRWarning
from stc.runtime import execute

DT = 1e-3


def io(n_in, n_out):
    return {"input": nir.Input(input_type={"input": np.array(n_in)}),
            "output": nir.Output(output_type={"output": np.array(n_out)})}


def run(g, x):
    return execute(g, {g.inputs()[0].name: x}).outputs[g.outputs()[0].name]


def test_scalar_conv_bias_is_applied(tmp_path):
    w = np.random.default_rng(0).normal(size=(3, 2, 3, 3)).astype(np.float32)
    conv = nir.Conv2d(input_shape=(5, 5), weight=w, stride=1, padding=1, dilation=1, groups=1,
                      bias=np.array(0.5, np.float32))
    graph = nir.NIRGraph(nodes={**io([2, 5, 5], [3, 5, 5]), "c": conv},
                         edges=[("input", "c"), ("c", "output")], type_check=False)
    x = torch.rand(2, 1, 2, 5, 5)
    want = F.conv2d(x[:, 0], torch.as_tensor(w), torch.full((3,), 0.5), padding=1)
    torch.testing.assert_close(run(from_nir(graph, DT), x)[:, 0], want)


def test_grouped_nonsquare_conv_file_reads_without_nir_type_check(tmp_path):
    w = np.random.default_rng(1).normal(size=(4, 1, 3, 2)).astype(np.float32)
    b = np.arange(4, dtype=np.float32)
    conv = nir.Conv2d(input_shape=(6, 5), weight=w, stride=(2, 1), padding=(1, 0),
                      dilation=1, groups=2, bias=b)
    graph = nir.NIRGraph(nodes={**io([2, 6, 5], [4, 3, 4]), "c": conv},
                         edges=[("input", "c"), ("c", "output")], type_check=False)
    nir.write(tmp_path / "g.nir", graph)
    g = load_nir(tmp_path / "g.nir", dt=DT)
    x = torch.rand(3, 2, 2, 6, 5)
    want = F.conv2d(x.flatten(0, 1), torch.as_tensor(w), torch.as_tensor(b), stride=(2, 1),
                    padding=(1, 0), groups=2)
    torch.testing.assert_close(run(g, x).flatten(0, 1), want)


def test_snntorch_rleaky_export_matches_snntorch():
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    lin = nn.Linear(4, 5)
    rl = snn.RLeaky(beta=torch.full((5,), 0.8), linear_features=5, threshold=torch.ones(5),
                    reset_mechanism="zero", reset_delay=False, init_hidden=True)
    with torch.no_grad():
        rl.recurrent.weight.mul_(2)
    net = nn.Sequential(lin, rl)
    graph = export_to_nir(net, torch.rand(1, 4), ignore_dims=[0])
    g = from_nir(graph, dt=1e-4)  # snnTorch's exporter writes dt = 1e-4
    assert g.metadata["recurrent"]
    T, B = 30, 3
    x = torch.rand(T, B, 4) * 2
    got = run(g, x)
    out = []
    with torch.no_grad():  # snnTorch's own RLeaky, stepped from rest
        rl.spk = torch.zeros(B, 5)
        rl.mem = torch.zeros(B, 5)
        for t in range(T):
            s = rl(lin(x[t]))
            out.append((s[0] if isinstance(s, tuple) else s).clone())
    want = torch.stack(out)
    assert 0 < want.sum() < want.numel()
    torch.testing.assert_close(got, want)


def test_other_cycles_are_refused_with_nir_names():
    lif = nir.LIF(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2),
                  v_threshold=np.ones(2), v_reset=np.zeros(2))
    graph = nir.NIRGraph(nodes={**io([2], [2]), "a.x": nir.Linear(weight=np.eye(2)),
                                "b": nir.Linear(weight=np.eye(2)), "n": lif},
                         edges=[("input", "a.x"), ("a.x", "b"), ("b", "a.x"), ("b", "n"),
                                ("n", "output")], type_check=False)
    with pytest.raises(MappingError, match=r"cycle .*a\.x"):
        from_nir(graph, DT)


def test_integrator_cubali_threshold_delay_conv1d_formulas():
    rng = np.random.default_rng(2)
    r = np.full(3, 2.0)
    ts, tm = np.full(3, 4e-3), np.full(3, 5e-3)
    x = torch.rand(12, 2, 3)
    nodes = {
        "i": nir.I(r=r),
        "li": nir.CubaLI(tau_syn=ts, tau_mem=tm, r=r, v_leak=np.zeros(3), w_in=np.ones(3)),
        "th": nir.Threshold(threshold=np.full(3, 0.6)),
        "d": nir.Delay(delay=np.array([0.0, 1e-3, 3e-3])),
    }
    for k, n in nodes.items():
        graph = nir.NIRGraph(nodes={**io([3], [3]), k: n},
                             edges=[("input", k), (k, "output")], type_check=False)
        got = run(from_nir(graph, DT), x).double()
        xd = x.double()
        if k == "i":
            want = torch.cumsum(DT * 2.0 * xd, 0)
        elif k == "li":
            i = v = torch.zeros(2, 3, dtype=torch.float64)
            want = []
            for t in range(12):
                i = i + (DT / 4e-3) * (xd[t] - i)
                v = v + (DT / 5e-3) * (2.0 * i - v)
                want.append(v)
            want = torch.stack(want)
        elif k == "th":
            want = (xd > 0.6).double()
        else:
            want = torch.zeros_like(xd)
            for j, k_ in enumerate((0, 1, 3)):
                want[k_:, :, j] = xd[:12 - k_, :, j]
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    w = rng.normal(size=(4, 3, 3)).astype(np.float32)
    c1 = nir.Conv1d(input_shape=7, weight=w, stride=2, padding=1, dilation=1, groups=1,
                    bias=np.zeros(4, np.float32))
    graph = nir.NIRGraph(nodes={**io([3, 7], [4, 4]), "c": c1},
                         edges=[("input", "c"), ("c", "output")], type_check=False)
    xc = torch.rand(2, 2, 3, 7)
    want = F.conv1d(xc.flatten(0, 1), torch.as_tensor(w), stride=2, padding=1)
    torch.testing.assert_close(run(from_nir(graph, DT), xc).flatten(0, 1), want)


def _cuba(tau_syn=2e-3, w=None):
    cuba = nir.CubaLIF(tau_syn=np.full(2, tau_syn), tau_mem=np.full(2, 5e-3), r=np.ones(2),
                       v_leak=np.zeros(2), v_threshold=np.ones(2), v_reset=np.zeros(2))
    w = np.eye(2) if w is None else w
    return {**io([2], [2]), "fc": nir.Linear(weight=np.asarray(w, np.float32)), "n": cuba}


EDGES = [("input", "fc"), ("fc", "n"), ("n", "output")]


def test_parameters_and_dt_are_checked():
    for bad in (0.0, -1e-3, 5e-4):
        with pytest.raises(MappingError, match="tau_syn"):
            from_nir(nir.NIRGraph(nodes=_cuba(bad), edges=EDGES, type_check=False), DT)
    w = np.eye(2)
    w[0, 1] = np.nan
    with pytest.raises(MappingError, match=r"'fc' \(Linear\): parameter 'weight' has NaN"):
        from_nir(nir.NIRGraph(nodes=_cuba(w=w), edges=EDGES, type_check=False), DT)
    g = nir.NIRGraph(nodes=_cuba(), edges=EDGES, metadata={"dt": 1e-3}, type_check=False)
    assert from_nir(g, None).metadata["dt"] == 1e-3
    with pytest.raises(ValueError, match="disagrees with the NIR graph's metadata dt=0.001"):
        from_nir(g, 1e-4)
    with pytest.raises(ValueError, match="dt is required"):
        from_nir(nir.NIRGraph(nodes=_cuba(), edges=EDGES, type_check=False), None)


def test_unknown_type_in_a_file_is_named(tmp_path):
    p = tmp_path / "u.nir"
    nir.write(p, nir.NIRGraph(nodes=_cuba(), edges=EDGES, type_check=False))
    with h5py.File(p, "r+") as f:
        del f["node/nodes/n/type"]
        f["node/nodes/n/type"] = "Spiral"
    with pytest.raises(ValueError, match=r"unknown node type\(s\) n \(Spiral\)"):
        load_nir(p, DT)


def test_names_that_collide_after_renaming():
    nodes = {**io([2], [3]), "fc.1": nir.Linear(weight=np.ones((3, 2), np.float32)),
             "fc_1": nir.Linear(weight=np.full((3, 3), 2.0, np.float32))}
    g = from_nir(nir.NIRGraph(nodes=nodes, edges=[("input", "fc.1"), ("fc.1", "fc_1"),
                                                  ("fc_1", "output")], type_check=False), DT)
    x = torch.rand(4, 2, 2)
    torch.testing.assert_close(run(g, x), x.sum(-1, keepdim=True).expand(4, 2, 3) * 6)
    bad = {**io([2], [3]), "fc.1": nir.Linear(weight=np.ones((3, 2), np.float32)),
           "fc_1": nir.Linear(weight=np.ones((3, 4), np.float32))}
    with pytest.raises(MappingError, match=r"NIR 'fc_1'|NIR 'fc\.1'"):
        from_nir(nir.NIRGraph(nodes=bad, edges=[("input", "fc.1"), ("fc.1", "fc_1"),
                                                ("fc_1", "output")], type_check=False), DT)


def test_peer_producers_get_a_convention_warning():
    g = nir.NIRGraph(nodes=_cuba(), edges=EDGES, metadata={"source": "snnTorch 0.9"},
                     type_check=False)
    with pytest.warns(NIRWarning, match="reset_mechanism='subtract'"):
        from_nir(g, DT)


def test_stc_run_feeds_every_input_and_saves_every_output(tmp_path):
    from typer.testing import CliRunner

    from stc.cli.main import app

    nodes = {"a": nir.Input(input_type={"input": np.array([2])}),
             "b": nir.Input(input_type={"input": np.array([2])}),
             "fa": nir.Linear(weight=np.eye(2, dtype=np.float32)),
             "fb": nir.Linear(weight=np.full((2, 2), 3.0, np.float32)),
             "ya": nir.Output(output_type={"output": np.array([2])}),
             "yb": nir.Output(output_type={"output": np.array([2])})}
    edges = [("a", "fa"), ("b", "fb"), ("fa", "ya"), ("fa", "yb"), ("fb", "yb")]
    nir.write(tmp_path / "two.nir", nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    xa, xb = np.random.default_rng(0).random((2, 2, 5, 2), dtype=np.float32)
    np.savez(tmp_path / "x.npz", a=xa, b=xb)
    r = CliRunner()
    res = r.invoke(app, ["bundle", str(tmp_path / "two.nir"), "--dt", "1e-3", "-o",
                         str(tmp_path / "two.stcb")])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["run", str(tmp_path / "two.stcb"), "-i", str(tmp_path / "x.npz"),
                         "-o", str(tmp_path / "y.npz")])
    assert res.exit_code == 0, res.output
    y = np.load(tmp_path / "y.npz")
    np.testing.assert_allclose(y["ya"], xa, rtol=1e-6)
    np.testing.assert_allclose(y["yb"], xa + 3 * xb.sum(-1, keepdims=True), rtol=1e-5)
    res = r.invoke(app, ["bundle", str(tmp_path / "two.nir"), "-o", str(tmp_path / "n.stcb")])
    assert res.exit_code == 2 and "dt is required" in res.output  # no --dt, no metadata dt
    np.save(tmp_path / "one.npy", xa)
    res = r.invoke(app, ["run", str(tmp_path / "two.stcb"), "-i", str(tmp_path / "one.npy")])
    assert res.exit_code == 2 and "2 inputs" in res.output and "Traceback" not in res.output
