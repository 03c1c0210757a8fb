"""Ray Data batch inference on a real local Ray cluster: 10,000 digits through two actors give
exactly the outputs of a plain ``load_bundle(...).infer`` (what ``stc run`` computes) on the
same array, in input order; ``stc run --engine ray`` writes the same file."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

pytest.importorskip("ray", reason="Ray is in the dev set (requirements/lock.txt)")

from stc.bundle import write_bundle  # noqa: E402
from stc.ir.frontends.torch import from_torch  # noqa: E402
from stc.nn.neurons import LIF  # noqa: E402
from stc.runtime import load_bundle  # noqa: E402
from stc.serve_ray.batch import infer_dataset, load_input  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), LIF(backend="torch"), nn.Linear(32, 10),
                          LIF(backend="torch")).eval()
    path = tmp_path_factory.mktemp("b") / "mlp.stcb"
    write_bundle(path, from_torch(model, (64,), time_steps=4), name="mlp", version="1")
    x = (load_digits().data / 16.0).astype(np.float32)
    x = np.resize(x, (10_000, 64))  # 10,000 real digit scans (the 1,797 repeated in order)
    return path, x


def test_ray_data_equals_plain_run_in_order(digits_bundle):
    path, x = digits_bundle
    got = infer_dataset(path, x, actors=2, batch_size=500)
    exe = load_bundle(path, backend="cpu")
    try:
        want = exe.infer({exe.inputs[0].name: x})
    finally:
        exe.close()
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape
        np.testing.assert_array_equal(got[name], want[name])


def test_stc_run_engine_ray_writes_the_plain_result(digits_bundle, tmp_path):
    path, x = digits_bundle
    folder = tmp_path / "parts"
    folder.mkdir()
    np.save(folder / "a.npy", x[:700])
    np.save(folder / "b.npy", x[700:1000])
    np.testing.assert_array_equal(load_input(folder), x[:1000])
    out = tmp_path / "y.npy"
    r = subprocess.run([sys.executable, "-m", "stc.cli.main", "run", str(path), "--input",
                        str(folder), "--output", str(out), "--engine", "ray", "--actors", "2"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stdout + r.stderr
    exe = load_bundle(path, backend="cpu")
    want = exe.infer({exe.inputs[0].name: x[:1000]})
    exe.close()
    np.testing.assert_array_equal(np.load(out), want[exe.outputs[0].name])


def test_bad_batch_inputs(tmp_path, digits_bundle):
    path, _ = digits_bundle
    with pytest.raises(FileNotFoundError, match="does not exist"):
        infer_dataset(tmp_path / "nope.stcb", np.zeros((2, 64), np.float32))
    with pytest.raises(ValueError, match="actors and batch_size must be >= 1"):
        infer_dataset(path, np.zeros((2, 64), np.float32), actors=0)
    with pytest.raises(ValueError, match="at least one row"):
        infer_dataset(path, np.zeros((0, 64), np.float32))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .npy file"):
        load_input(tmp_path / "empty")
