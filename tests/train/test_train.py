"""Training on the real digits scans, checkpoints and the ``stc train`` command."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stc.models import create_model
from stc.train import (
    TrainConfig,
    evaluate,
    load_checkpoint,
    load_digits_split,
    save_checkpoint,
    train_model,
)


def test_digits_split_is_fixed_stratified_and_scaled():
    a, b = load_digits_split(seed=0), load_digits_split(seed=0)
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    assert float(a.x_train.min()) == 0.0 and float(a.x_train.max()) == 1.0
    from sklearn.datasets import load_digits

    counts = np.bincount(load_digits().target, minlength=10)
    test_counts = np.bincount(a.y_test.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - counts * 0.2) <= 1)     # stratified 80/20
    c = load_digits_split(seed=1)
    assert not torch.equal(a.y_test, c.y_test)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(test_fraction=1.5)


@pytest.mark.slow
def test_short_training_run_beats_80_percent_held_out(tmp_path):
    """A real (small) spiking transformer trained for <= 60 s on CPU; chance is 10 %."""
    data = load_digits_split(seed=0)
    torch.manual_seed(0)
    model = create_model("spikformer_tiny", backend="torch")
    before = evaluate(model, data.x_test, data.y_test)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=4e-3, seed=0, max_seconds=60)
    result = train_model(model, data, cfg)
    assert result.seconds < 75
    assert result.test_accuracy >= 0.80, result
    assert result.test_accuracy > before + 0.3
    assert result.losses[-1] < result.losses[0]
    # Independent accuracy: argmax of logits vs labels, computed here.
    with torch.no_grad():
        acc = float((model(data.x_test).argmax(1) == data.y_test).float().mean())
    assert acc == pytest.approx(result.test_accuracy)
    assert 0 < result.firing_rates["block.0.attn.q_lif"] < 1


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    torch.manual_seed(0)
    model = create_model("sdt_tiny", backend="torch", sparse_ratio=0.5)
    with torch.no_grad():  # non-default BN statistics must survive too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.bias.uniform_(0.0, 0.8)
    model.eval()
    out = save_checkpoint(model, tmp_path / "ckpt", metadata={"note": "test"})
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]   # no temp files
    back = load_checkpoint(out)
    assert back.config == model.config and not back.training
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    from safetensors.torch import load_file

    stored = load_file(str(out / "model.safetensors"))
    assert set(stored) == set(model.state_dict())


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_checkpoint(tmp_path)
    model = create_model("spikformer_tiny", backend="torch")
    save_checkpoint(model, tmp_path / "a")
    other = create_model("spikformer_tiny", backend="torch", embed_dim=32, num_heads=2)
    save_checkpoint(other, tmp_path / "b")
    os.replace(tmp_path / "b" / "model.safetensors", tmp_path / "a" / "model.safetensors")
    with pytest.raises(ValueError, match="do not match"):
        load_checkpoint(tmp_path / "a")
    with pytest.raises(TypeError, match="config"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "c")


def test_train_config_errors():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1.0)


def test_cli_rejects_unknown_model_and_auto_backend_is_torch_on_cpu(monkeypatch):
    from stc.kernels import resolve_backend

    from stc.cli.main import app

    result = CliRunner().invoke(app, ["train", "--model", "vit", "--epochs", "1"])
    assert result.exit_code == 2 and "unknown model" in result.output
    # The CLI does not set TRITON_INTERPRET: "auto" then resolves to the torch path on CPU.
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
