"""Runtime: the load_bundle/Executable contract, spike statistics, kernel backends, fixed
numerics, and backend dispatch errors."""

import numpy as np
import pytest
import torch
from stc.kernels.lif.reference import lif_reference
from torch import nn

from stc.bundle import write_bundle
from stc.errors import UnsupportedTargetError
from stc.ir.frontends import from_nir, from_torch
from stc.nn import LIF
from stc.runtime import Executable, TensorSpec, load_bundle


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 6), LIF(backend="torch"), nn.Linear(6, 3),
                      LIF(backend="torch"))
    with torch.no_grad():
        m[0].weight.mul_(3)
        m[0].bias.add_(0.8)
        m[2].weight.mul_(3)
        m[2].bias.add_(1.0)
    return m.eval()


def test_spike_statistics_match_an_independent_count():
    m = mlp()
    exe = Executable(from_torch(m, (5,), time_steps=6))
    x = torch.rand(4, 5)
    res = exe.run({"input": x}, record_spikes=True)
    with torch.no_grad():
        s1, _ = lif_reference(m[0](x).expand(6, 4, 6).contiguous())
        s2, _ = lif_reference(m[2](s1))
    assert res.spike_counts == {"lif_1": int(s1.sum()), "lif_3": int(s2.sum())}
    assert res.firing_rates["lif_1"] == pytest.approx(float(s1.mean()))
    assert torch.equal(res.spike_trains["lif_3"], s2)
    torch.testing.assert_close(res.outputs["output"], s2.mean(0), rtol=0, atol=0)


def test_triton_backend_equals_torch_backend():
    """backend="auto": the interpreted Triton LIF kernel under pytest (tiny size)."""
    g = from_torch(mlp(), (5,), time_steps=3)
    x = np.random.default_rng(0).random((2, 5)).astype(np.float32)
    a = Executable(g.copy(), kernel_backend="auto").infer({"input": x})["output"]
    b = Executable(g.copy(), kernel_backend="torch").infer({"input": x})["output"]
    np.testing.assert_array_equal(a, b)


def test_contract_types_and_bad_input(tmp_path):
    p = write_bundle(tmp_path / "m.stcb", from_torch(mlp(), (5,)), name="mlp", version="2")
    exe = load_bundle(p, backend="cpu", numerics=None, public_key=None)
    assert isinstance(exe.inputs[0], TensorSpec) and exe.inputs[0].shape == [-1, 5]
    out = exe.infer({"input": np.zeros((7, 5), np.float32)})
    assert set(out) == {"output"} and out["output"].shape == (7, 3)
    assert out["output"].dtype == np.float32
    with pytest.raises(ValueError, match="missing input 'input'"):
        exe.infer({})
    with pytest.raises(ValueError, match="unknown input"):
        exe.infer({"input": np.zeros((1, 5)), "other": np.zeros(1)})
    with pytest.raises(ValueError, match=r"shape \[B, 5\]"):
        exe.infer({"input": np.zeros((1, 4), np.float32)})
    with pytest.raises(ValueError, match="backend"):
        load_bundle(p, backend="tpu")
    with pytest.raises(ValueError, match="no fixed-point graph"):
        load_bundle(p, numerics="fixed")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error path")
def test_gpu_without_cuda_is_a_clear_error(tmp_path):
    p = write_bundle(tmp_path / "m.stcb", from_torch(mlp(), (5,)), name="mlp")
    with pytest.raises(UnsupportedTargetError, match="CUDA"):
        load_bundle(p, backend="gpu")


@pytest.mark.gpu
def test_gpu_cuda_graphs_equal_eager_and_cpu(tmp_path):
    p = write_bundle(tmp_path / "m.stcb", from_torch(mlp(), (5,)), name="mlp")
    cpu = load_bundle(p, backend="cpu")
    graphed = load_bundle(p, backend="gpu")
    eager = load_bundle(p, backend="gpu")
    eager.cuda_graphs = False
    for batch in (3, 32):  # 3: CUDA-graph path (or its guarded fallback); 32: eager
        for seed in (1, 2):  # the second call replays the captured graph
            x = {"input": np.random.default_rng(seed).random((batch, 5)).astype(np.float32)}
            y = graphed.infer(x)["output"]
            np.testing.assert_array_equal(y, eager.infer(x)["output"])
            # CPU (torch LIF) vs GPU (Triton LIF, cuBLAS): rates may differ where a membrane
            # lands within rounding of v_th; allow a few such flips
            assert np.abs(y - cpu.infer(x)["output"]).mean() < 0.02


def test_temporal_nir_graph_is_batch_first():
    import nir

    tau = np.full(2, 2e-3, np.float32)
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([2])}),
               "lif": nir.LIF(tau=tau, r=np.ones(2, np.float32), v_leak=np.zeros(2, np.float32),
                              v_threshold=np.full(2, 0.1, np.float32),
                              v_reset=np.zeros(2, np.float32)),
               "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "lif"), ("lif", "output")])
    exe = Executable(from_nir(graph, dt=1e-3))
    assert exe.inputs[0].shape == [-1, -1, 2]
    x = np.zeros((3, 5, 2), np.float32)  # [B, T, N]
    x[1, :, 0] = 1.0
    y = exe.infer({"input": x})["output"]
    assert y.shape == (3, 5, 2)
    # v = 0.5 v + 0.5 x: 0.5 > 0.1 fires at t=0, then resets: fires every step
    np.testing.assert_array_equal(y[1, :, 0], np.ones(5))
    assert y[0].sum() == 0 and y[:, :, 1].sum() == 0


@pytest.mark.slow
def test_lava_backend_dispatch(tmp_path):
    """load_bundle(backend="lava-sim") runs Lava in a spawned worker
    (stc.lava.isolated); its outputs equal the runtime's fixed mode on the same bundle."""
    from stc.lava.isolated import IsolatedLavaExecutable
    from stc.passes import quantize

    g = from_torch(mlp(), (5,))
    p = write_bundle(tmp_path / "f.stcb", g, name="mlp")
    with pytest.raises(ValueError, match="no fixed-point graph"):
        load_bundle(p, backend="lava-sim")
    p = write_bundle(tmp_path / "m.stcb", g, name="mlp", version="7",
                     fixed_graph=quantize(g)[0])
    with pytest.raises(ValueError, match="fixed-point numerics only"):
        load_bundle(p, backend="lava-sim", numerics="float")
    x = np.round(np.random.default_rng(0).uniform(0, 4, size=(3, 5))).astype(np.float32)
    cpu = load_bundle(p, backend="cpu", numerics="fixed")
    want = cpu.infer({cpu.inputs[0].name: x})
    exe = load_bundle(p, backend="lava-sim")
    try:
        assert isinstance(exe, IsolatedLavaExecutable)
        assert (exe.name, exe.version) == ("mlp", "7")
        assert [s.name for s in exe.inputs] == [s.name for s in cpu.inputs]
        got = exe.infer({exe.inputs[0].name: x})
    finally:
        exe.close()
    assert not exe._proc.is_alive()
    (key,) = want
    assert want[key].sum() > 0
    np.testing.assert_array_equal(got[key], want[key])
