"""CLI end to end with typer's CliRunner: keygen, bundle (module:factory and .nir), verify,
inspect, run; exit codes 0 / 1 (failed check) / 2 (bad input), no tracebacks."""

import textwrap

import nir
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stc.cli.main import app

FACTORY = textwrap.dedent("""
    import torch
    from torch import nn
    from stc.nn import LIF

    def make():
        torch.manual_seed(0)
        m = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.BatchNorm1d(6),
                          LIF(backend="torch"), nn.Linear(6, 3), LIF(backend="torch"))
        with torch.no_grad():
            m[1].weight.mul_(3)
            m[4].weight.mul_(3)
            m[4].bias.add_(1.0)
        return m.eval()
""")


@pytest.fixture
def work(tmp_path, monkeypatch):
    (tmp_path / "cli_test_net.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in r.output
    return r


def test_bundle_verify_inspect_run(work):
    r = invoke("keygen", "--out", work)
    assert r.exit_code == 0, r.output
    r = invoke("bundle", "cli_test_net:make", "-o", work / "m.stcb", "--input-shape", "1,4,4",
               "-T", 4, "--fixed", "--key", work / "stc_signing.pem")
    assert r.exit_code == 0, r.output
    assert "spike agreement" in r.output and "signed" in r.output
    r = invoke("verify", work / "m.stcb", "--key", work / "stc_signing.pub.pem")
    assert r.exit_code == 0 and "signature verified" in r.output
    r = invoke("inspect", work / "m.stcb")
    assert r.exit_code == 0
    for word in ("linear_1", "lif_3", "LoihiCubaLIF", "weights.safetensors", "sha256"):
        assert word in r.output
    x = np.random.default_rng(0).random((2, 1, 4, 4)).astype(np.float32)
    np.save(work / "x.npy", x)
    r = invoke("run", work / "m.stcb", "--input", work / "x.npy", "--output", work / "y.npy")
    assert r.exit_code == 0, r.output
    y = np.load(work / "y.npy")
    # independent reference: the factory's module, multi-step by hand
    import cli_test_net

    from stc.nn import LIF
    m = cli_test_net.make()
    xs = torch.stack([torch.from_numpy(x)] * 4)
    with torch.no_grad():
        for layer in m:
            xs = layer(xs) if isinstance(layer, LIF) else torch.stack([layer(z) for z in xs])
    np.testing.assert_allclose(y, xs.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    assert "firing rate lif_3" in r.output


def test_failed_checks_exit_1(work):
    assert invoke("keygen", "--out", work).exit_code == 0
    invoke("bundle", "cli_test_net:make", "-o", work / "u.stcb", "--input-shape", "1,4,4")
    r = invoke("verify", work / "u.stcb", "--key", work / "stc_signing.pub.pem")
    assert r.exit_code == 1 and "unsigned" in r.output
    blob = bytearray((work / "u.stcb").read_bytes())
    blob[-40] ^= 0xFF
    (work / "t.stcb").write_bytes(bytes(blob))
    r = invoke("verify", work / "t.stcb")
    assert r.exit_code == 1 and "error:" in r.output


def test_bad_input_exits_2(work):
    r = invoke("bundle", "nope", "-o", work / "z.stcb")
    assert r.exit_code == 2 and "not a checkpoint directory" in r.output
    r = invoke("bundle", "cli_test_net:make", "-o", work / "z.stcb")
    assert r.exit_code == 2 and "--input-shape" in r.output
    invoke("bundle", "cli_test_net:make", "-o", work / "m.stcb", "--input-shape", "1,4,4")
    np.save(work / "bad.npy", np.zeros((2, 3), np.float32))
    r = invoke("run", work / "m.stcb", "--input", work / "bad.npy")
    assert r.exit_code == 2 and "must have shape [B, 1, 4, 4]" in r.output
    r = invoke("run", work / "m.stcb", "--input", work / "missing.npy")
    assert r.exit_code == 2
    r = invoke("verify", work / "missing.stcb")
    assert r.exit_code == 2 and "not found" in r.output
    assert invoke("keygen", "--out", work).exit_code == 0
    r = invoke("keygen", "--out", work)
    assert r.exit_code == 2 and "--force" in r.output


def test_bundle_nir_file(work):
    w = np.eye(3, dtype=np.float32)
    tau = np.full(3, 2e-3, np.float32)
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([3])}),
               "fc": nir.Linear(weight=w),
               "lif": nir.LIF(tau=tau, r=np.ones(3, np.float32), v_leak=np.zeros(3, np.float32),
                              v_threshold=np.full(3, 0.4, np.float32),
                              v_reset=np.zeros(3, np.float32)),
               "output": nir.Output(output_type={"output": np.array([3])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    nir.write(work / "net.nir", graph)
    r = invoke("bundle", work / "net.nir", "-o", work / "n.stcb")
    assert r.exit_code == 2 and "--dt" in r.output
    r = invoke("bundle", work / "net.nir", "-o", work / "n.stcb", "--dt", "1e-3")
    assert r.exit_code == 0, r.output
    x = np.zeros((1, 4, 3), np.float32)
    x[0, :, 2] = 1.0
    np.save(work / "x.npy", x)
    r = invoke("run", work / "n.stcb", "-i", work / "x.npy", "-o", work / "y.npy")
    assert r.exit_code == 0, r.output
    # v = 0.5 v + 0.5 x > 0.4 fires every step for the driven neuron only
    np.testing.assert_array_equal(np.load(work / "y.npy")[0], [[0, 0, 1]] * 4)


def test_bundle_fixed_calibration_table_and_bad_calibration_files(work):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (24, 1, 4, 4)).astype(np.float32)  # spikes: integer input
    np.save(work / "cal.npy", x)
    np.save(work / "lab.npy", rng.integers(0, 3, 24))
    r = invoke("bundle", "cli_test_net:make", "-o", work / "c.stcb", "--input-shape", "1,4,4",
               "--fixed", "--calibration", work / "cal.npy", "--labels", work / "lab.npy")
    assert r.exit_code == 0, r.output
    assert "24 samples" in r.output and "fixed accuracy" in r.output
    bad = {"wrong shape": (rng.random((4, 16)).astype(np.float32), None),
           "labels length": (x, rng.integers(0, 3, 5)),
           "labels dtype": (x, rng.random(24))}
    for what, (cal, lab) in bad.items():
        np.save(work / "bad.npy", cal)
        args = ["--calibration", work / "bad.npy"]
        if lab is not None:
            np.save(work / "badlab.npy", lab)
            args += ["--labels", work / "badlab.npy"]
        r = invoke("bundle", "cli_test_net:make", "-o", work / "bad.stcb", "--input-shape",
                   "1,4,4", "--fixed", *args)
        assert r.exit_code == 2, (what, r.output)
        assert ("shape [B, 1, 4, 4]" in r.output if what == "wrong shape"
                else "labels must be integer class ids of shape [24]" in r.output), r.output
        assert not (work / "bad.stcb").exists()
    r = invoke("bundle", "cli_test_net:make", "-o", work / "bad.stcb", "--input-shape",
               "1,4,4", "--labels", work / "lab.npy", "--fixed")
    assert r.exit_code == 2 and "--labels needs --calibration" in r.output


def test_checkpoint_contract_is_carried_shown_and_enforced(work):
    from stc.models import create_model
    from stc.train import save_checkpoint
    from stc.train.contract import training_record

    torch.manual_seed(0)
    save_checkpoint(create_model("spikformer_tiny", backend="torch"), work / "ck",
                    metadata=training_record(seed=0))
    r = invoke("bundle", work / "ck", "-o", work / "ck.stcb")
    assert r.exit_code == 0, r.output
    r = invoke("inspect", work / "ck.stcb")
    assert r.exit_code == 0 and "input contract" in r.output and "[0.0, 1.0]" in r.output
    raw = np.random.default_rng(0).integers(0, 17, (2, 1, 8, 8)).astype(np.float64)
    raw[0, 0, 0, 0] = 16.0
    np.save(work / "raw.npy", raw)
    r = invoke("run", work / "ck.stcb", "-i", work / "raw.npy", "-o", work / "out.npy")
    assert r.exit_code == 2 and "expects values in [0, 1]" in r.output
    assert not (work / "out.npy").exists()
    r = invoke("run", work / "ck.stcb", "-i", work / "raw.npy", "--input-policy", "preprocess",
               "-o", work / "out.npy")
    assert r.exit_code == 0, r.output
    np.save(work / "x.npy", (raw / 16).astype(np.float32))
    r = invoke("run", work / "ck.stcb", "-i", work / "x.npy", "-o", work / "ref.npy")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.load(work / "out.npy"), np.load(work / "ref.npy"))
