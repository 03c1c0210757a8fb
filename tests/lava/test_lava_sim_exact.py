"""THE check: Lava's bit-accurate simulator (lava-sim executor, Loihi2SimCfg fixed_pt) emits
the same output spikes, bit for bit, as the independent fixed-point references (the NumPy
oracle of stc.lava.layers and the stc runtime's fixed mode) on held-out samples."""

import numpy as np
import pytest
import torch
from lava_nets import (
    cnn_graph,
    digits_mlp,
    digits_split,
    even_weights,
    mlp_graph,
    small_cnn,
)

from stc.lava.executor import load_lava_executable, run_lava_sim
from stc.lava.layers import Cuba, DenseLayer, InputLayer, reference_forward

pytestmark = pytest.mark.slow


def test_digits_mlp_lava_equals_oracle_and_runtime():
    layers, T = digits_mlp()
    _, _, xte, yte = digits_split(n_test=4)
    x = np.repeat(xte[:, None], T, axis=1)  # direct encoding: graded pixels 0..16
    got = run_lava_sim(layers, x)
    ref = reference_forward(layers, x)
    assert ref.sum() > 0 and ref.sum() < ref.size  # the check is not vacuous
    np.testing.assert_array_equal(got, ref)

    # the same network as an IR graph: Lava executable == runtime Executable in fixed mode
    # (CPU) == the runtime's raw integer interpreter
    from stc.runtime.executable import Executable
    from stc.runtime.interpreter import execute

    g = mlp_graph(layers, T, time_mean=False)
    exe = load_lava_executable(g, backend="lava-sim")
    try:
        out = exe.infer({"x": xte})["y"]
    finally:
        exe.close()
    rt = Executable(g, numerics="fixed").infer({"x": xte})["y"]
    assert rt.shape == out.shape == (4, T, 10) and rt.sum() > 0
    np.testing.assert_array_equal(out, rt)
    raw = execute(g, {"x": torch.tensor(xte)}, numerics="fixed").outputs["y"]
    np.testing.assert_array_equal(got, raw.permute(1, 0, 2).numpy())


def test_small_cnn_lava_equals_oracle():
    layers = small_cnn()
    rng = np.random.default_rng(5)
    x = (rng.random((2, 5, 2, 8, 8)) < 0.4).astype(np.int32)
    got = run_lava_sim(layers, x)
    ref = reference_forward(layers, x)
    assert ref.sum() > 0
    np.testing.assert_array_equal(got, ref)


def test_cnn_bundle_with_max_pool_lava_sim_equals_cpu_fixed(tmp_path):
    """Through the real bundle path: write_bundle(+ loihi/ members) -> load_bundle."""
    from stc.bundle import write_bundle
    from stc.lava.mapping import map_graph
    from stc.runtime import load_bundle

    g = cnn_graph(T=6)
    path = write_bundle(tmp_path / "cnn.stcb", g, name="cnn", fixed_graph=cnn_graph(T=6),
                        extra_members=map_graph(g).members())
    rng = np.random.default_rng(7)
    x = rng.integers(0, 4, (2, 1, 6, 6)).astype(np.float32)  # graded input, repeated over T
    lava = load_bundle(path, backend="lava-sim")
    try:
        assert (lava.name, lava.version) == ("cnn", "1")
        out = lava.infer({"x": x})["y"]
    finally:
        lava.close()
    cpu = load_bundle(path, backend="cpu", numerics="fixed")
    rt = cpu.infer({"x": x})["y"]
    assert rt.shape == out.shape == (2, 6, 5) and rt.sum() > 0
    np.testing.assert_array_equal(out, rt)


def test_biased_mlp_lava_equals_runtime_and_oracle():
    """Neuron biases act from each sample's first input on, in Lava (netx's staggered reset
    clears what a bias charged while the input travelled down the pipeline) as in the
    runtime's delay-free fixed mode and the NumPy oracle."""
    from stc.runtime.executable import Executable
    from stc.runtime.interpreter import execute

    rng = np.random.default_rng(3)
    layers = [InputLayer((8,)),
              DenseLayer(even_weights(rng, 12, 8), Cuba(1024, 256, 80),
                         bias=rng.integers(-10, 30, 12)),
              DenseLayer(even_weights(rng, 4, 12), Cuba(2048, 128, 60),
                         bias=rng.integers(-10, 30, 4))]
    T = 5
    g = mlp_graph(layers, T, time_mean=False)
    x = (rng.random((3, 8)) < 0.6).astype(np.int64)
    xt = np.repeat(x[:, None], T, axis=1)
    raw = execute(g, {"x": torch.tensor(x)}, numerics="fixed").outputs["y"]
    ref = reference_forward(layers, xt)
    np.testing.assert_array_equal(raw.permute(1, 0, 2).numpy(), ref)
    np.testing.assert_array_equal(run_lava_sim(layers, xt), ref)
    exe = load_lava_executable(g)
    try:
        out = exe.infer({"x": x})["y"]
    finally:
        exe.close()
    rt = Executable(g, numerics="fixed").infer({"x": x})["y"]
    assert rt.sum() > 0 and rt.sum() < rt.size
    np.testing.assert_array_equal(out, rt)
