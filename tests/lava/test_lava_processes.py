"""Custom Lava processes against independent references: SDSA built from neurons vs the
float SDSA reference (stc.kernels.attention), SSA/DSFormer fixed-point processes vs the
torch references, and the delayed residual Add vs a NumPy residual."""

import numpy as np
import pytest
import torch
from stc.kernels.attention import dsformer_reference, sdsa_reference, ssa_reference

from stc.lava.fixed_point import cuba_lif_fixed
from stc.lava.processes.add import DelayedAdd, alignment_delays
from stc.lava.processes.attention import DSFormerProcess, SSAProcess
from stc.lava.processes.common import dense, lif, run_process_graph
from stc.lava.processes.sdsa import SDSA_LATENCY, build_sdsa

pytestmark = pytest.mark.slow


def _feed(x: np.ndarray, steps: int) -> np.ndarray:
    """[S, *shape] -> ring-buffer data [*shape, steps], zero after S."""
    d = np.zeros(x.shape[1:] + (steps,), np.int32)
    d[..., : x.shape[0]] = np.moveaxis(x, 0, -1)
    return d


def _heads(x, H):
    """[B, T, N, D] -> [T, B, H, N, d] float64 for the torch references."""
    B, T, N, D = x.shape
    return torch.tensor(x, dtype=torch.float64).reshape(B, T, N, H, D // H).permute(1, 0, 3, 2, 4)


def _unheads(y):
    T, B, H, N, d = y.shape
    return y.permute(1, 0, 3, 2, 4).reshape(B, T, N, H * d).numpy()


def test_sdsa_from_neurons_equals_float_sdsa():
    rng = np.random.default_rng(0)
    T, N, D = 6, 4, 3
    q, k, v = ((rng.random((T, N, D)) < 0.5).astype(np.int32) for _ in range(3))
    blk = build_sdsa(N, D)
    steps = T + SDSA_LATENCY
    out = run_process_graph([(blk.q_in, _feed(q.reshape(T, -1), steps)),
                             (blk.k_in, _feed(k.reshape(T, -1), steps)),
                             (blk.v_in, _feed(v.reshape(T, -1), steps))], blk.out, steps)
    got = out[SDSA_LATENCY:].reshape(T, N, D)
    ref = sdsa_reference(*(torch.tensor(a, dtype=torch.float32)[:, None, None]
                           for a in (q, k, v)), v_th=0.5)[:, 0, 0].numpy()
    assert ref.sum() > 0
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("window,ratio", [(1, 1.0), (2, 0.5)])
def test_attention_processes_equal_torch_references(window, ratio):
    rng = np.random.default_rng(1)
    B, T, N, H, d = 2, 5, 3, 2, 2
    D = H * d
    q, k, v = ((rng.random((B, T, N, D)) < 0.5).astype(np.int32) for _ in range(3))
    if window == 1 and ratio == 1.0:
        proc = SSAProcess(shape=(N, D), num_heads=H, time_steps=T)
    else:
        proc = DSFormerProcess(shape=(N, D), num_heads=H, time_steps=T, window_size=window,
                               sparse_ratio=ratio)
    steps = B * T + proc.latency
    feeds = [(p, _feed(x.reshape(B * T, N, D), steps))
             for p, x in ((proc.q_in, q), (proc.k_in, k), (proc.v_in, v))]
    out = run_process_graph(feeds, proc.out, steps)
    got = out[proc.latency:].reshape(B, T, N, D)
    qh, kh, vh = _heads(q, H), _heads(k, H), _heads(v, H)
    if window == 1 and ratio == 1.0:
        ref = ssa_reference(qh, kh, vh, scale=0.125)
    else:
        ref = dsformer_reference(qh, kh, vh, window_size=window, sparse_ratio=ratio,
                                 scale=0.125)
    ref = _unheads(ref)
    assert ref.sum() > 0
    np.testing.assert_array_equal(got * 0.125, ref)  # integer O, scale folded downstream


def test_delayed_add_aligns_a_residual_branch():
    rng = np.random.default_rng(2)
    T, n = 7, 5
    x = (rng.random((T, n)) < 0.5).astype(np.int32)
    w = rng.integers(-40, 40, (n, n)) * 2
    delays = alignment_delays([1, 0])  # LIF branch: one Dense; skip: none
    assert delays == [0, 1]
    syn, neu = dense(w), lif((n,), (1024, 512, 30))
    syn.a_out.connect(neu.a_in)
    add = DelayedAdd(shape=(n,), delay_a=delays[0], delay_b=delays[1])
    neu.s_out.connect(add.a_in)
    steps = T + 1
    out = run_process_graph([(syn.s_in, _feed(x, steps)), (add.b_in, _feed(x, steps))],
                            add.out, steps)
    ref = cuba_lif_fixed(x @ w.T, 1024, 512, 30).astype(np.int64) + x  # aligned residual
    assert ref.max() == 2  # spikes of both branches coincide somewhere
    np.testing.assert_array_equal(out[1:], ref)


def test_process_argument_errors():
    with pytest.raises(ValueError, match="num_heads"):
        SSAProcess(shape=(3, 5), num_heads=2, time_steps=4)
    with pytest.raises(ValueError, match="sparse_ratio"):
        DSFormerProcess(shape=(3, 4), num_heads=2, time_steps=4, sparse_ratio=0.0)
    with pytest.raises(ValueError, match="delays"):
        DelayedAdd(shape=(3,), delay_a=-1)
    with pytest.raises(ValueError, match="latencies"):
        alignment_delays([])
