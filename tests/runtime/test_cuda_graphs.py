"""CUDA graphs of the runtime (issue 11): batch buckets, padding and slicing (CPU), and on a
GPU a capture that must really happen (no silent eager fallback)."""

import threading

import numpy as np
import pytest
import torch
from torch import nn

from stc.ir.frontends import from_torch
from stc.nn import LIF
from stc.runtime import Executable
from stc.runtime.executable import batch_bucket, check_buckets, pad_batch, slice_result
from stc.runtime.interpreter import execute


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 12), LIF(), nn.Linear(12, 3), LIF())
    with torch.no_grad():
        for lin in (m[0], m[2]):
            lin.weight.mul_(3)
            lin.bias.add_(0.8)
    return m.eval()


def test_batch_bucket_is_the_smallest_bucket_that_fits():
    buckets = (1, 2, 4, 8)
    assert [batch_bucket(b, buckets) for b in (1, 2, 3, 4, 5, 8, 9)] == [1, 2, 4, 4, 8, 8, None]
    assert batch_bucket(3, (16, 4)) == 4
    with pytest.raises(ValueError, match="batch"):
        batch_bucket(0, buckets)


def test_check_buckets():
    assert check_buckets([8, 1, 4, 4]) == (1, 4, 8)
    assert check_buckets(()) == ()
    for bad in ([0], [1.5], [True]):
        with pytest.raises(ValueError, match="graph_buckets"):
            check_buckets(bad)
    with pytest.raises(TypeError, match="graph_buckets"):
        check_buckets("1,2")


def test_pad_batch_zero_pads_along_the_batch_dim():
    t = torch.arange(6.0).reshape(3, 2)
    p = pad_batch(t, 5, 0)
    assert p.shape == (5, 2) and torch.equal(p[:3], t) and not p[3:].any()
    tt = torch.ones(4, 2, 3)                              # temporal: [T, B, ...]
    assert pad_batch(tt, 3, 1).shape == (4, 3, 3) and not pad_batch(tt, 3, 1)[:, 2].any()
    assert pad_batch(t, 3, 0) is t
    with pytest.raises(ValueError, match="pad"):
        pad_batch(t, 2, 0)


def test_padded_run_sliced_back_equals_the_unpadded_run():
    """What a graph replay computes: the bucket-sized run on zero-padded inputs, then
    slice_result. Outputs and spike statistics must equal a run on the real batch."""
    g = from_torch(mlp(), (5,), time_steps=4)
    x = torch.rand(3, 5) * 2
    want = execute(g, {"input": x}, kernel_backend="torch")
    padded = execute(g, {"input": pad_batch(x, 8, 0)}, kernel_backend="torch")
    assert sum(padded.spike_counts.values()) != sum(want.spike_counts.values())  # pads fire
    got = slice_result(padded, 3, g.temporal())
    torch.testing.assert_close(got.outputs["output"], want.outputs["output"], rtol=0, atol=0)
    assert got.spike_counts == want.spike_counts and sum(want.spike_counts.values()) > 0
    assert got.firing_rates == pytest.approx(want.firing_rates)


def test_cpu_executable_skips_cuda_graphs_cleanly():
    exe = Executable(from_torch(mlp(), (5,)), device="cpu", cuda_graphs=True)
    assert exe.cuda_graphs is False and exe.graph_status == {} and exe.graphs_captured() == []
    y = exe.infer({"input": np.ones((3, 5), np.float32)})["output"]
    assert y.shape == (3, 3)


@pytest.mark.gpu
@pytest.mark.parametrize("model", ["mlp", "spikformer_tiny"])
def test_gpu_graphs_capture_at_load_and_replay_padded(model):
    """Fails if any bucket fell back to eager (require_graphs=True raises on a failed
    capture, and every bucket must report 'captured')."""
    if model == "mlp":
        g, shape = from_torch(mlp(), (5,), time_steps=4), (5,)
    else:
        from stc.ir.frontends.models import from_model
        from stc.models import create_model

        torch.manual_seed(0)
        g, shape = from_model(create_model("spikformer_tiny").eval(), time_steps=4), (1, 8, 8)
    graphed = Executable(g.copy(), device="cuda", require_graphs=True)
    assert graphed.graphs_captured() == [1, 2, 4, 8], graphed.graph_status
    eager = Executable(g.copy(), device="cuda", cuda_graphs=False)
    rng = np.random.default_rng(0)
    for batch in (1, 3, 8, 3):                            # 3: padded to the bucket of 4
        x = {"input": (rng.random((batch, *shape)) * 2).astype(np.float32)}
        y = graphed.infer(x)["output"]
        np.testing.assert_array_equal(y, eager.infer(x)["output"])
        assert graphed.last_result.spike_counts == eager.last_result.spike_counts
    assert graphed.graphs_captured() == [1, 2, 4, 8]


@pytest.mark.gpu
def test_gpu_replays_from_two_threads():
    g = from_torch(mlp(), (5,), time_steps=4)
    exe = Executable(g.copy(), device="cuda", require_graphs=True)
    ref = Executable(g.copy(), device="cuda", cuda_graphs=False)
    xs = [(np.random.default_rng(i).random((2, 5)) * 2).astype(np.float32) for i in range(8)]
    want = [ref.infer({"input": x})["output"] for x in xs]
    got = [None] * len(xs)

    def work(idx):
        for i in idx:
            got[i] = exe.run({"input": torch.from_numpy(xs[i])}).outputs["output"].cpu()
    threads = [threading.Thread(target=work, args=(range(k, 8, 2),)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for w, y in zip(want, got, strict=True):
        np.testing.assert_array_equal(y.numpy(), w)
