"""`stc run --precision` and `stc serve --precision` (issue 11): the option reaches the
runtime, and a bad value exits 2 without a traceback."""

from unittest import mock

import numpy as np
import torch
from torch import nn
from typer.testing import CliRunner

from stc.bundle import write_bundle
from stc.cli.main import app
from stc.ir.frontends import from_torch
from stc.nn import LIF
from stc.runtime import load_bundle


def _bundle(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 8), LIF(backend="torch"), nn.Linear(8, 4),
                      LIF(backend="torch")).eval()
    with torch.no_grad():
        m[0].weight.mul_(3)
        m[0].bias.add_(0.7)
        m[2].weight.mul_(3)
        m[2].bias.add_(0.7)
    return write_bundle(tmp_path / "m.stcb", from_torch(m, (6,)), name="m")


def test_run_precision_reaches_the_runtime(tmp_path):
    p = _bundle(tmp_path)
    x = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    seen = []

    def spy(*a, **kw):
        seen.append(kw.get("precision"))
        return load_bundle(*a, **kw)
    with mock.patch("stc.runtime.load_bundle", spy):
        r = CliRunner().invoke(app, ["run", str(p), "--input", str(tmp_path / "x.npy"),
                                     "--precision", "bf16", "--output",
                                     str(tmp_path / "y.npy")])
    assert r.exit_code == 0, r.output
    assert seen == ["bf16"]
    want = load_bundle(p, precision="bf16").infer({"input": x})["output"]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


def test_bad_precision_exits_2(tmp_path):
    p = _bundle(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 6), np.float32))
    r = CliRunner().invoke(app, ["run", str(p), "--input", str(tmp_path / "x.npy"),
                                 "--precision", "fp16"])
    assert r.exit_code == 2 and "precision" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["serve", "--repository", str(tmp_path), "--port", "0",
                                 "--precision", "fp16"])
    assert r.exit_code == 2 and "precision" in r.output
