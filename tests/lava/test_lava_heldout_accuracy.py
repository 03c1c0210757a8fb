"""The trained digits MLP SNN (``stc.demo.train_mlp``) in Loihi fixed point, fed the float
input the float model takes (digits in [0, 1]; the bundle's input contract and input
quantisation, no weight edits): on the WHOLE held-out split (360 digits) the runtime's fixed
mode (CPU) is within 0.5 accuracy points of the float torch module (independent reference),
and on a held-out subset the lava-sim executor (Lava's bit-accurate Loihi 2 simulator, via
``load_bundle``) emits the same output spikes as the CPU fixed mode, bit for bit. The full
360-sample lava-sim comparison, all models through the CLI, is
benchmarks/lava/heldout_exactness.py."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

T = 4  # stc.demo.MLP_T
LAVA_SAMPLES = 24


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory):
    """(float torch module, bundle path, held-out float pixels [360, 64] in [0, 1],
    labels [360])."""
    from stc.bundle import write_bundle
    from stc.demo import MLP_T, train_mlp
    from stc.ir.frontends.torch import from_torch
    from stc.lava import map_graph
    from stc.passes.quantize import quantize
    from stc.runtime.contract import attach_contract
    from stc.train import load_digits_split
    from stc.train.contract import digits_input_contract

    assert MLP_T == T
    net = train_mlp(seed=0)  # 64-64-10 LIF on float digits in [0, 1]
    graph = attach_contract(from_torch(net, (64,), time_steps=T, readout="spikes"),
                            digits_input_contract((64,)))
    d = load_digits_split(seed=0)
    x = d.x_test.reshape(-1, 64).numpy()
    fixed, rep = quantize(graph, calibration=x[:96], labels=d.y_test[:96])
    assert rep.input_scale == 16.0 and rep.samples == 96
    path = write_bundle(tmp_path_factory.mktemp("heldout") / "digits_mlp.stcb", graph,
                        name="digits_mlp", version="1", fixed_graph=fixed, numerics="fixed",
                        extra_members=map_graph(fixed).members())
    return net, path, x, d.y_test.numpy()


def _runtime_spikes(path, x, backend, numerics):
    """Output spikes [B, T, 10] of the bundle run by ``load_bundle(backend, numerics)``."""
    from stc.runtime import load_bundle

    exe = load_bundle(path, backend=backend, numerics=numerics)
    try:
        (y,) = exe.infer({exe.inputs[0].name: x}).values()
    finally:
        exe.close()
    y = np.asarray(y)
    return y if y.shape[:2] == (len(x), T) else y.transpose(1, 0, 2)


def test_fixed_accuracy_within_half_a_point_of_float_on_all_heldout(digits_bundle):
    net, path, x, y = digits_bundle
    assert len(x) == 360
    with torch.no_grad():  # float reference: the torch module, T steps of direct encoding
        ref = net(torch.from_numpy(x).unsqueeze(0).repeat(T, 1, 1)).numpy()  # [T, B, 10]
    acc_float = float((ref.sum(0).argmax(1) == y).mean())
    fix = _runtime_spikes(path, x, "cpu", "fixed")
    assert fix.shape == (360, T, 10) and set(np.unique(fix)) <= {0.0, 1.0}
    acc_fixed = float((fix.sum(1).argmax(1) == y).mean())
    assert acc_float > 0.8  # the trained model is not trivial
    assert abs(acc_fixed - acc_float) <= 0.005, (acc_fixed, acc_float)
    # the bundle's float graph reproduces the module (the bundle is the model)
    flt = _runtime_spikes(path, x, "cpu", "float")
    np.testing.assert_array_equal(flt, ref.transpose(1, 0, 2))


def test_raw_pixels_are_refused_or_preprocessed(digits_bundle):
    from stc.runtime import load_bundle

    _, path, x, _ = digits_bundle
    raw = (x[:8] * 16).astype(np.float64)  # grey levels 0..16, not what the model takes
    exe = load_bundle(path, numerics="fixed")
    with pytest.raises(ValueError, match=r"\[0, 1\].*preprocess"):
        exe.infer({"input": raw})
    pre = load_bundle(path, numerics="fixed", input_policy="preprocess")
    np.testing.assert_array_equal(pre.infer({"input": raw})["output"],
                                  exe.infer({"input": x[:8]})["output"])


def test_lava_sim_equals_cpu_fixed_on_heldout_subset(digits_bundle):
    _, path, x, _ = digits_bundle
    x = x[:LAVA_SAMPLES]
    fix = _runtime_spikes(path, x, "cpu", "fixed")
    lava = _runtime_spikes(path, x, "lava-sim", "fixed")
    assert fix.shape == lava.shape == (LAVA_SAMPLES, T, 10)
    assert 0 < fix.sum() < fix.size  # not vacuous: some, not all, neurons spike
    np.testing.assert_array_equal(lava, fix)
