"""A converted SNN is an ordinary stc graph: it bundles in float and fixed point, the bundle
runs on the CPU runtime like the conversion's own run, lava-sim equals CPU fixed, and
``stc convert`` / ``stc bundle model.onnx`` / SpikeCompiler compile it with clean errors."""

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from stc.cli.main import app
from stc.convert import convert_onnx, torch_to_onnx
from stc.runtime import load_bundle


def _mlp_onnx():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(),
                      nn.Linear(8, 3)).eval()
    return m, torch_to_onnx(m, (1, 4, 4))


def _ints(n, seed):  # grey levels 0..3: integer inputs, as fixed numerics need
    return np.random.default_rng(seed).integers(0, 4, (n, 1, 4, 4)).astype(np.float32)


def test_bundle_float_and_fixed_run_like_the_conversion(tmp_path):
    _, ob = _mlp_onnx()
    calib, x = _ints(64, 0), _ints(6, 1)
    conv = convert_onnx(ob, calib, timesteps=8)
    p = conv.save(tmp_path / "snn.stcb", fixed=True, name="mlp")
    got = load_bundle(p, backend="cpu", numerics="float").infer({"input": x})["output"]
    np.testing.assert_allclose(got, conv.run(x), atol=1e-6)
    fixed = load_bundle(p, backend="cpu", numerics="fixed").infer({"input": x})["output"]
    np.testing.assert_allclose(fixed, conv.run(x, numerics="fixed"), atol=1e-6)
    # the fixed graph (reset to zero) classifies the calibration data like the float one
    zf = convert_onnx(ob, calib, timesteps=8, reset="zero", bias_shift=False).run(calib)
    assert (conv.run(calib, numerics="fixed").argmax(1) == zf.argmax(1)).mean() >= 0.9


@pytest.mark.slow
def test_lava_sim_equals_cpu_fixed(tmp_path):
    pytest.importorskip("lava", reason="lava-nc is part of this project's environment")
    _, ob = _mlp_onnx()
    conv = convert_onnx(ob, _ints(64, 0), timesteps=6)
    p = conv.save(tmp_path / "snn.stcb", fixed=True)
    x = _ints(3, 2)
    cpu = load_bundle(p, backend="cpu", numerics="fixed").infer({"input": x})["output"]
    lava = load_bundle(p, backend="lava-sim")
    try:
        sim = lava.infer({"input": x})["output"]
    finally:
        lava.close()
    assert np.abs(cpu).sum() > 0
    np.testing.assert_array_equal(cpu, sim)


def test_compiler_accepts_onnx_paths_and_protos(tmp_path):
    import onnx

    from stc.compiler import SpikeCompiler

    _, ob = _mlp_onnx()
    f = tmp_path / "m.onnx"
    f.write_bytes(ob)
    calib = _ints(32, 0)
    comp = SpikeCompiler("cpu", 2, time_steps=8)
    a = comp.compile(str(f), calibration=calib)
    b = comp.compile(onnx.load(f), calibration=calib)
    ref = convert_onnx(ob, calib, timesteps=8).run(calib[:4])
    np.testing.assert_allclose(a.run(torch.as_tensor(calib[:4])).numpy(), ref, atol=1e-6)
    np.testing.assert_allclose(b.run(torch.as_tensor(calib[:4])).numpy(), ref, atol=1e-6)
    with pytest.raises(ValueError, match="calibration"):
        comp.compile(str(f))


def _invoke(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in r.output
    return r


def test_cli_convert_and_bundle(tmp_path):
    _, ob = _mlp_onnx()
    (tmp_path / "m.onnx").write_bytes(ob)
    np.save(tmp_path / "x.npy", _ints(40, 0))
    np.save(tmp_path / "bad.npy", np.zeros((4, 3), np.float32))
    (tmp_path / "cut.onnx").write_bytes(ob[:100])
    r = _invoke("convert", tmp_path / "m.onnx", "--calibration", tmp_path / "x.npy",
                "-T", 8, "--fixed", "-o", tmp_path / "s.stcb")
    assert r.exit_code == 0, r.output
    assert "agreement" in r.output and (tmp_path / "s.stcb").is_file()
    r = _invoke("run", tmp_path / "s.stcb", "-i", tmp_path / "x.npy", "--numerics", "fixed")
    assert r.exit_code == 0, r.output
    r = _invoke("bundle", tmp_path / "m.onnx", "--calibration", tmp_path / "x.npy",
                "-o", tmp_path / "b.stcb")
    assert r.exit_code == 0, r.output
    for bad in (("convert", tmp_path / "m.onnx", "--calibration", tmp_path / "bad.npy"),
                ("convert", tmp_path / "cut.onnx", "--calibration", tmp_path / "x.npy"),
                ("convert", tmp_path / "m.onnx", "--calibration", tmp_path / "none.npy"),
                ("bundle", tmp_path / "m.onnx")):
        r = _invoke(*bad, "-o", tmp_path / "z.stcb")
        assert r.exit_code == 2, r.output
        assert "error:" in r.output
    assert not (tmp_path / "z.stcb").exists()


@pytest.mark.slow
@pytest.mark.parametrize("head", ["flatten", "global_pool"])
def test_converted_cnn_with_average_pooling_runs_on_lava_sim(tmp_path, head):
    """Sum pooling of spikes between two conv layers maps to Lava by folding the pool into
    the next layer's matrix (exact integers); a global average pool before the readout runs
    on the host with it. lava-sim equals CPU fixed."""
    pytest.importorskip("lava", reason="lava-nc is part of this project's environment")
    torch.manual_seed(0)
    tail = [nn.Flatten(), nn.Linear(24, 3)] if head == "flatten" else [
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)]
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                      nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), *tail).eval()
    conv = convert_onnx(torch_to_onnx(m, (1, 4, 4)), _ints(64, 0), timesteps=6)
    p = conv.save(tmp_path / "cnn.stcb", fixed=True)
    x = _ints(3, 2)
    cpu = load_bundle(p, device="cpu", numerics="fixed").infer({"input": x})["output"]
    lava = load_bundle(p, device="lava-sim")
    try:
        sim = lava.infer({"input": x})["output"]
    finally:
        lava.close()
    assert np.abs(cpu).sum() > 0
    np.testing.assert_array_equal(cpu, sim)
