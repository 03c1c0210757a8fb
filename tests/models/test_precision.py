"""GEMM precision policy (stc.precision): fp32 / tf32 / bf16 on models, the runtime and the
compiler, checked against an independent bf16 computation and, on trained digits models,
against fp32 predictions."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stc.models import create_model
from stc.nn import LIF
from stc.precision import gemm_precision


def test_bf16_mode_is_bf16_operands_with_float32_result():
    torch.manual_seed(0)
    x, w, b = torch.randn(7, 33), torch.randn(5, 33), torch.randn(5)
    with gemm_precision("bf16", "cpu"):
        y = F.linear(x, w, b)
        z = F.conv2d(x.reshape(1, 1, 7, 33), w[:1, :9].reshape(1, 1, 3, 3))
        s = torch.relu(x)                                     # other ops untouched
    want = F.linear(x.bfloat16(), w.bfloat16(), b.bfloat16()).float()
    assert y.dtype == torch.float32 and torch.equal(y, want)
    assert not torch.equal(y, F.linear(x, w, b))             # really rounded
    assert torch.equal(z, F.conv2d(x.reshape(1, 1, 7, 33).bfloat16(),
                                   w[:1, :9].reshape(1, 1, 3, 3).bfloat16()).float())
    assert torch.equal(s, torch.relu(x))
    with gemm_precision("tf32", "cpu"):                       # no TF32 on CPU: IEEE fp32
        assert torch.equal(F.linear(x, w, b), F.linear(x, w, b))


def test_bad_precision_is_a_clear_error():
    from stc.compiler import SpikeCompiler
    from stc.ir.frontends import from_torch
    from stc.passes import quantize
    from stc.runtime import Executable

    with pytest.raises(ValueError, match="precision"):
        create_model("spikformer_tiny", precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        create_model("sdt_tiny").set_precision("int8")
    with pytest.raises(ValueError, match="precision"):
        SpikeCompiler(target="cpu", precision="half")
    g = from_torch(nn.Sequential(nn.Linear(4, 3), LIF()).eval(), (4,))
    with pytest.raises(ValueError, match="precision"):
        Executable(g.copy(), precision="fp64")
    with pytest.raises(ValueError, match="fixed numerics"):
        Executable(quantize(g)[0], numerics="fixed", precision="bf16")
    with pytest.raises(ValueError, match="device_type"):
        with gemm_precision("fp32", "tpu"):
            pass


def _digits_mlp():
    """A digits MLP SNN briefly trained with surrogate gradients (about a second)."""
    from stc.train import load_digits_split

    torch.manual_seed(0)
    d = load_digits_split()
    seq = nn.Sequential(nn.Linear(64, 64), LIF(backend="torch"), nn.Linear(64, 10),
                        LIF(backend="torch"))
    opt = torch.optim.Adam(seq.parameters(), lr=1e-2)
    x = d.x_train.reshape(-1, 64)
    for _ in range(3):
        for i in range(0, len(x), 64):
            out = seq(x[i:i + 64].unsqueeze(0).repeat(4, 1, 1)).mean(0)
            loss = F.cross_entropy(out * 10, d.y_train[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return seq.eval(), d


def test_runtime_precisions_agree_on_a_trained_digits_snn():
    from stc.compiler import SpikeCompiler

    seq, d = _digits_mlp()
    x = d.x_test.reshape(-1, 64)
    preds = {}
    for p in ("fp32", "tf32", "bf16"):
        compiled = SpikeCompiler(target="cpu", time_steps=4, precision=p).compile(seq, (64,))
        y = compiled.run(x)
        assert y.dtype == torch.float32
        preds[p] = y.argmax(1)
    acc = float((preds["fp32"] == d.y_test).float().mean())
    assert acc > 0.8, acc                                     # a trained model, real margins
    assert torch.equal(preds["tf32"], preds["fp32"])          # CPU: tf32 is IEEE fp32
    agree = float((preds["bf16"] == preds["fp32"]).float().mean())
    assert agree >= 0.95, agree


@pytest.mark.slow
@pytest.mark.parametrize("name", ["spikformer_tiny", "sdt_tiny", "dsformer_tiny"])
def test_trained_digits_transformers_agree_in_bf16(name):
    """Each digits preset trained briefly (as tests/train), then its 360 held-out digits in
    fp32, tf32 and bf16: bf16 flips a few spikes (weights rounded to 8 bits), so predictions
    agree on >= 90 % of the samples and accuracy moves by <= 4 points."""
    from stc.train import TrainConfig, load_digits_split, train_model

    data = load_digits_split(seed=0)
    torch.manual_seed(0)
    model = create_model(name, backend="torch")
    train_model(model, data, TrainConfig(epochs=3, batch_size=64, lr=4e-3, seed=0,
                                         max_seconds=45))
    out = {}
    with torch.no_grad():
        for p in ("fp32", "tf32", "bf16"):
            out[p] = model.set_precision(p)(data.x_test)
    model.set_precision("fp32")
    acc = {p: float((y.argmax(1) == data.y_test).float().mean()) for p, y in out.items()}
    assert acc["fp32"] > 0.5, acc
    assert torch.equal(out["tf32"], out["fp32"])
    agree = float((out["bf16"].argmax(1) == out["fp32"].argmax(1)).float().mean())
    assert agree >= 0.90 and abs(acc["bf16"] - acc["fp32"]) <= 0.04, (agree, acc)
