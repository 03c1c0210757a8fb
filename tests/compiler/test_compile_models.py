"""stc.models (Spikformer, SDT, DSFormer tiny presets) -> IR -> bundle -> runtime equals the
model's own forward exactly (float, CPU), with BatchNorm folded."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stc.cli.main import app
from stc.compiler import SpikeCompiler
from stc.models import create_model
from stc.runtime import load_bundle


def firing_model(name: str):
    torch.manual_seed(0)
    m = create_model(name, backend="torch").eval()
    with torch.no_grad():  # BN statistics that make every layer fire
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.5, 1.5)
                mod.bias.uniform_(0.4, 1.6)
                mod.weight.uniform_(0.5, 2.0)
    return m


@pytest.mark.parametrize("name", ["spikformer_tiny", "sdt_tiny", "dsformer_tiny"])
def test_model_bundle_round_trip(tmp_path, name):
    m = firing_model(name)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        want = m(x)
    compiled = SpikeCompiler(target="cpu", optimization_level=2, kernel_backend="torch") \
        .compile(m, (1, 8, 8))
    assert len(compiled.reports["folded_batchnorm"]) > 0
    got = compiled.run(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    exe = load_bundle(compiled.save(tmp_path / "m.stcb", name=name), backend="cpu")
    y = exe.infer({"input": x.numpy()})["output"]
    np.testing.assert_allclose(y, want.numpy(), rtol=0, atol=1e-6)
    rates = exe.last_result.firing_rates
    assert len(rates) >= 6 and min(rates.values()) > 0.01  # every spiking layer is active


def test_cli_bundles_a_training_checkpoint(tmp_path):
    from stc.train import save_checkpoint

    m = firing_model("spikformer_tiny")
    save_checkpoint(m, tmp_path / "ckpt")
    r = CliRunner().invoke(app, ["bundle", str(tmp_path / "ckpt"), "-o",
                                 str(tmp_path / "m.stcb")])
    assert r.exit_code == 0, r.output
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        want = m(x).numpy()
    y = load_bundle(tmp_path / "m.stcb").infer({"input": x.numpy()})["output"]
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-6)
