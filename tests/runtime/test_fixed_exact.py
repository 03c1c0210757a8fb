"""Fixed numerics without integer matmuls (CUDA has none): exact float sums decided at load
time (stc.runtime.fixed_plan) and the tight CUBA-LIF recurrence (stc.runtime.fixed_lif),
checked against Lava's bit-accurate rules (kernels/cuba_fixed reference, the NumPy oracle of
stc.lava) with every integer F.linear / conv / matmul / pooling patched to raise."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from stc.kernels.cuba_fixed.reference import cuba_fixed_reference

from stc.ir import nodes as N
from stc.ir.graph import Graph
from stc.runtime.fixed_lif import cuba_lif_run
from stc.runtime.fixed_plan import plan_fixed
from stc.runtime.interpreter import _conv_exact, execute

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lava"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from int_guard import forbid_integer_matmul  # noqa: E402
from lava_nets import cnn_graph, digits_mlp, mlp_graph  # noqa: E402


@pytest.fixture
def no_integer_matmul(monkeypatch):
    forbid_integer_matmul(monkeypatch)


@pytest.mark.parametrize("i_decay,v_decay", [(4096, 2048), (4096, 0), (4096, 4096),
                                             (1024, 256), (1, 3), (2048, 4095), (3000, 1234)])
@pytest.mark.parametrize("big", [False, True])
def test_recurrence_equals_lava_reference(i_decay, v_decay, big):
    """Bit-identical to the reference for every decay class, with wrap and saturation hit."""
    gen = torch.Generator().manual_seed(i_decay + v_decay)
    lim = (1 << 23) if big else 600
    a = torch.randint(-lim, lim, (6, 3, 17), generator=gen, dtype=torch.int32)
    bias = torch.randint(-300, 300, (17,), generator=gen, dtype=torch.int32)
    for bias_exp in (6, 0, -2):
        want, _, _ = cuba_fixed_reference(a, i_decay - 1, v_decay, 300, bias, bias_exp)
        for bound in (float(lim), float("inf")):
            got = cuba_lif_run(a.double(), i_decay=i_decay, v_decay=v_decay, v_th_mant=300,
                               bias=bias, bias_exp=bias_exp, a_bound=bound)
            assert torch.equal(got, want.float()), (bias_exp, bound)
    if big:
        assert want.any() and not want.all()


def test_recurrence_on_a_repeated_input():
    """A Repeat encoder's stride-0 input gives what its materialised copy gives."""
    x = torch.randint(-900, 900, (4, 33), generator=torch.Generator().manual_seed(2))
    a = x.float().unsqueeze(0).expand(5, 4, 33)
    got = cuba_lif_run(a, i_decay=4096, v_decay=2048, v_th_mant=200, a_bound=900)
    want, _, _ = cuba_fixed_reference(a.to(torch.int32).contiguous(), 4095, 2048, 200)
    assert torch.equal(got, want.float()) and want.any()


@pytest.mark.parametrize("groups,stride,padding,dilation", [(1, (1, 1), (1, 1), (1, 1)),
                                                            (2, (2, 1), (0, 2), (1, 2))])
def test_unfold_convolution_is_exact(groups, stride, padding, dilation):
    """The CUDA convolution path (unfold + matmul) equals an int64 convolution (numpy)."""
    from stc.lava.fixed_point import conv2d_int

    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, (3, 4, 7, 6))
    w = rng.integers(-128, 128, (6, 4 // groups, 3, 3)) * 2
    n = N.Conv2d(name="c", inputs=["x"], in_channels=4, out_channels=6, kernel_size=(3, 3),
                 stride=stride, padding=padding, dilation=dilation, groups=groups)
    got = _conv_exact(torch.tensor(x, dtype=torch.float32), torch.tensor(w).float(), None, n,
                      unfold=True)
    want = conv2d_int(np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2)), w,
                      stride, (0, 0), dilation, groups)
    np.testing.assert_array_equal(got.numpy().astype(np.int64), want)


def test_mlp_equals_numpy_oracle_without_integer_matmul(no_integer_matmul):
    """Graded digits input through the MLP: spikes equal stc.lava's NumPy oracle."""
    from lava_nets import digits_split

    from stc.lava.layers import reference_forward

    layers, T = digits_mlp()
    g = mlp_graph(layers, T, time_mean=False)
    _, _, x, _ = digits_split(n_test=16)
    res = execute(g, {"x": torch.tensor(x, dtype=torch.float32)}, numerics="fixed",
                  record_spikes=True)
    want = reference_forward(layers, np.repeat(x[:, None], T, axis=1))  # [B, T, 10]
    got = res.outputs["y"].transpose(0, 1).numpy()
    assert got.dtype == np.int64 and want.any()
    np.testing.assert_array_equal(got, want)
    plan = plan_fixed(g)
    assert plan["fc0"].dtype == torch.float64  # FP32 input: bound 2**24 -> float64
    assert plan["fc1"].dtype == torch.float32  # spikes in: float32 is exact
    assert plan_fixed(g, {"x": 16})["fc0"].dtype == torch.float32


def test_cnn_equals_int64_reference_without_integer_matmul(no_integer_matmul):
    """Conv -> LIF -> max pool -> Linear -> LIF against int64 numpy arithmetic."""
    from stc.lava.fixed_point import cuba_lif_fixed

    g = cnn_graph()
    x = np.random.default_rng(4).integers(0, 17, (3, 1, 6, 6))
    got = execute(g, {"x": torch.tensor(x, dtype=torch.float32)}, numerics="fixed",
                  input_bounds={"x": 16}).outputs["y"].numpy()  # [T, B, 5]
    w = g.tensors["c.weight"].numpy().astype(np.int64)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    a = np.zeros((3, 3, 6, 6), np.int64)
    for i in range(6):
        for j in range(6):
            a[:, :, i, j] = np.einsum("bckl,ockl->bo", xp[:, :, i:i + 3, j:j + 3], w)
    s1 = cuba_lif_fixed(np.repeat(a[None], 4, axis=0), 1024, 512, 40).astype(np.int64)
    pooled = s1.reshape(4, 3, 3, 3, 2, 3, 2).max(axis=(4, 6)).reshape(4, 3, 27)
    a2 = pooled @ g.tensors["fc.weight"].numpy().astype(np.int64).T
    want = cuba_lif_fixed(a2, 2048, 256, 60)
    assert want.any()
    np.testing.assert_array_equal(got, want)


def _sum_pool_graph() -> Graph:
    """Input (temporal spikes 2x4x4) -> sum pool 2 -> Add(skip via sum pool) -> Linear -> LIF."""
    rng = np.random.default_rng(5)
    g = Graph()
    g.add(N.Input(name="x", shape=(2, 4, 4), temporal=True, datatype="BOOL"))
    g.add(N.Pool2d(name="p", inputs=["x"], shape=(2, 2, 2), kind="sum"))
    g.add(N.Pool2d(name="q", inputs=["x"], shape=(2, 2, 2), kind="max"))
    g.add(N.Add(name="add", inputs=["p", "q"], shape=(2, 2, 2)))
    g.add(N.Flatten(name="fl", inputs=["add"], shape=(8,)))
    g.add(N.Linear(name="fc", inputs=["fl"], shape=(6,), in_features=8, out_features=6),
          weight=torch.tensor(rng.integers(-60, 60, (6, 8)) * 2))
    g.add(N.LoihiCubaLIF(name="lif", inputs=["fc"], shape=(6,), i_decay=2048, v_decay=1024,
                         v_th_mant=30), bias=torch.tensor(rng.integers(-9, 9, 6)))
    g.add(N.Output(name="y", inputs=["lif"], shape=(6,)))
    return g.infer_shapes().verify()


def test_pooling_and_residual_sums_without_integer_ops(no_integer_matmul):
    g = _sum_pool_graph()
    x = torch.rand(5, 3, 2, 4, 4, generator=torch.Generator().manual_seed(1)) < 0.5
    got = execute(g, {"x": x.float()}, numerics="fixed").outputs["y"]
    xi = x.to(torch.int64)
    s = xi.reshape(5, 3, 2, 2, 2, 2, 2).sum(dim=(4, 6)) + \
        xi.reshape(5, 3, 2, 2, 2, 2, 2).amax(dim=(4, 6))
    a = torch.from_numpy(s.reshape(5, 3, 8).numpy() @ g.tensors["fc.weight"].numpy().T)
    a = a.to(torch.int32)  # numpy's int64 matmul: the torch one is patched to raise
    want, _, _ = cuba_fixed_reference(a, 2047, 1024, 30, g.tensors["lif.bias"], 6)
    assert want.any()
    assert torch.equal(got, want.to(torch.int64))


def test_float32_and_float64_plans_agree_on_a_transformer(no_integer_matmul):
    """Spikformer tiny fixed: the float32 plan (bounded input) equals the all-float64 plan."""
    from transformer_nets import active_model, pixels

    from stc.ir.frontends.models import from_model
    from stc.passes import fold_batchnorm, quantize

    g, _ = fold_batchnorm(from_model(active_model("spikformer_tiny")))
    q, _ = quantize(g, probe=pixels(2, seed=3))
    x = {"input": pixels(2)}
    lo = execute(q, x, numerics="fixed", input_bounds={"input": 16}, record_spikes=True)
    hi = execute(q, x, numerics="fixed", input_bounds={"input": 2.0 ** 30},
                 record_spikes=True)
    plan = plan_fixed(q, {"input": 16})
    assert {p.dtype for p in plan.values() if p.dtype is not None} == {torch.float32}
    assert plan_fixed(q, {"input": 2.0 ** 30})[q.nodes[2].name].dtype == torch.float64
    assert sum(lo.spike_counts.values()) > 0
    assert lo.spike_counts == hi.spike_counts
    for k in lo.spike_trains:
        assert torch.equal(lo.spike_trains[k], hi.spike_trains[k]), k
    assert torch.equal(lo.outputs["output"], hi.outputs["output"])


def test_bad_fixed_inputs_are_named():
    g = mlp_graph(digits_mlp()[0], 4)
    with pytest.raises(ValueError, match="integer-valued"):
        execute(g, {"x": torch.full((1, 64), 0.5)}, numerics="fixed")
    with pytest.raises(ValueError, match=r"\|x\| <= 16"):
        execute(g, {"x": torch.full((1, 64), 17.0)}, numerics="fixed", input_bounds={"x": 16})
    w = torch.full((4, 64), 254)
    big = Graph()
    big.add(N.Input(name="x", shape=(64,)))
    big.add(N.Repeat(name="r", inputs=["x"], shape=(64,), time_steps=2))
    big.add(N.Linear(name="fc", inputs=["r"], shape=(4,), in_features=64, out_features=4),
            weight=w)
    big.add(N.LoihiCubaLIF(name="l", inputs=["fc"], shape=(4,)))
    big.add(N.Output(name="y", inputs=["l"], shape=(4,)))
    with pytest.raises(ValueError, match="'fc'.*2\\*\\*53"):
        plan_fixed(big, {"x": 2.0 ** 40})


def test_plan_is_made_once_at_load_and_threads_are_restored(monkeypatch):
    """The Executable decides precisions when it is built, not per call; a small CPU fixed
    run uses one thread and gives the caller's thread count back."""
    import stc.runtime.interpreter as interp
    from stc.runtime.executable import Executable

    calls = []
    real = interp.plan_fixed
    monkeypatch.setattr(interp, "plan_fixed", lambda *a, **k: calls.append(1) or real(*a, **k))
    layers, T = digits_mlp()
    exe = Executable(mlp_graph(layers, T), numerics="fixed")
    assert len(calls) == 1
    seen = []
    run_fixed = interp._run_fixed
    monkeypatch.setattr(interp, "_run_fixed",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or run_fixed(*a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = np.zeros((3, 64), np.float32)
        for _ in range(3):
            exe.infer({"x": x})
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert len(calls) == 1 and seen == [1, 1, 1]
