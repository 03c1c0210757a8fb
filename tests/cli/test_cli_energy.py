"""``stc energy BUNDLE``: the paper formula recomputed by hand from an eager PyTorch run."""

import json

import numpy as np
import torch
from torch import nn
from typer.testing import CliRunner

from stc.cli.main import app
from stc.compiler import SpikeCompiler
from stc.energy import PRESETS
from stc.nn import LIF


def test_energy_matches_the_formula_on_an_eager_run(tmp_path):
    torch.manual_seed(0)
    T = 3
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), LIF(backend="torch"),
                        nn.Linear(6, 3), LIF(backend="torch")).eval()
    with torch.no_grad():
        net[1].weight.mul_(3)
    path = SpikeCompiler("cpu", 2, T).compile(net, (1, 4, 4)).save(tmp_path / "m.stcb")
    x = np.random.default_rng(0).random((5, 1, 4, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = CliRunner().invoke(app, ["energy", str(path), "-i", str(tmp_path / "x.npy"), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    with torch.no_grad():  # independent reference: the eager modules, T repeats of x
        h = net[1](torch.from_numpy(x).flatten(1)).expand(T, -1, -1)
        s1 = net[2](h)
    fr1 = float(s1.mean())
    p = PRESETS["fp32"]
    want_pj = 16 * 6 * T * p.e_mac_pj + fr1 * T * 6 * 3 * p.e_ac_pj
    assert abs(got["paper_formula_45nm_fp32"] - want_pj / 1e3) < 1e-9 * want_pj + 1e-12
    lo, hi = got["loihi2_range"]
    assert 0 < lo <= hi and got["loihi1"] > 0 and got["kind"] == "estimate"
    assert any("Horowitz" in s for s in got["sources"]["paper_formula"])
    table = CliRunner().invoke(app, ["energy", str(path), "-i", str(tmp_path / "x.npy")])
    assert table.exit_code == 0 and "Loihi 2 range" in table.output
    bad = CliRunner().invoke(app, ["energy", str(path), "-i", str(tmp_path / "nope.npy")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
