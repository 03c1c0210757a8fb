"""Fixed-point CUBA-LIF: Triton kernel == torch reference bit for bit, edge semantics checked
against hand-computed integers, and the reference checked against Lava's own fixed_pt model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stc.kernels import resolve_backend
from stc.kernels.cuba_fixed import cuba_lif_fixed

M = 1 << 23


def _rand(shape, lo, hi, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi, shape, generator=g, dtype=torch.int32)


def test_auto_backend_is_triton_under_interpreter():
    # guards against CI silently testing the reference against itself
    assert resolve_backend("auto", torch.device("cpu")) == "triton"


@pytest.mark.parametrize(
    "shape,du,dv,vth,bias_exp",
    [((5, 3, 77), 300, 500, 2000, 2), ((1, 129), 4095, 4096, 100, 0),
     ((7, 2, 5, 3), 0, 0, 9000, -3), ((4, 1030), 4094, 4095, 5000, 6)],
)
def test_kernel_equals_reference(shape, du, dv, vth, bias_exp):
    a = _rand(shape, -6000, 9000, 1)
    bias = _rand(shape[1:], -400, 400, 2)
    u0 = _rand(shape[1:], -M, M, 3)
    v0 = _rand(shape[1:], -M, M, 4)
    args = dict(bias_mant=bias, bias_exp=bias_exp, u_init=u0, v_init=v0)
    ref = cuba_lif_fixed(a, du, dv, vth, backend="torch", **args)
    ker = cuba_lif_fixed(a, du, dv, vth, backend="triton", **args)
    assert ref[0].dtype == ker[0].dtype == torch.uint8
    assert ref[1].dtype == ker[1].dtype == torch.int32
    for r, k in zip(ref, ker):
        assert torch.equal(r, k)
    assert 0 < ref[0].float().mean() < 1  # the case exercises both spiking and silence


def _py_trunc(p: int) -> int:
    return -((-p) >> 12) if p < 0 else p >> 12


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_wrap_saturation_and_rounding_edges(backend):
    # one step, four neurons; expected values computed with Python ints from Lava's formulas
    u0 = torch.tensor([M - 100, -M + 50, -1, 5000, -M + 9000], dtype=torch.int32)
    v0 = torch.tensor([0, 0, -4097, M - 1, -(M - 1)], dtype=torch.int32)
    a = torch.tensor([[100, -100, 0, 0, -100]], dtype=torch.int32)
    s, u, v = cuba_lif_fixed(a, 0, 1, 131071, u_init=u0, v_init=v0, backend=backend)
    exp_u = []
    for u_i, a_i in zip(u0.tolist(), a[0].tolist()):
        d = _py_trunc(u_i * 4095) + (a_i << 6)
        w = d - 2 * M if d > M else d
        exp_u.append(d + 2 * M if w <= -M else w)
    exp_v = []
    for v_i, u_i in zip(v0.tolist(), exp_u):
        h = min(max(_py_trunc(v_i * 4095) + u_i, -(M - 1)), M - 1)
        exp_v.append(0 if h > 131071 << 6 else h)
    assert exp_u[0] < 0 and exp_u[1] > 0      # both wrapped
    assert exp_u[2] == 0                       # -1 * 4095 / 4096 truncates toward 0, not -1
    assert exp_v[4] == -(M - 1)                # negative saturation
    assert u.tolist() == exp_u and v.tolist() == exp_v
    assert s[0].tolist() == [0, 0, 0, 1, 0]       # v saturated at 2**23 - 1 > vth << 6


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_threshold_is_strict(backend):
    # bias alone drives v (dv = 0: no leak). Neuron 0: v == vth << 6 at step 0 (no spike),
    # 2 vth << 6 at step 1 (spike). Neuron 1: v reaches vth << 6 exactly at step 1 only.
    vth = 1000
    a = torch.zeros(3, 2, dtype=torch.int32)
    s, _, v = cuba_lif_fixed(a, 4095, 0, vth, bias_mant=torch.tensor([vth, vth // 2],
                             dtype=torch.int32), bias_exp=6, backend=backend)
    assert s[:, 0].tolist() == [0, 1, 0]
    assert s[:, 1].tolist() == [0, 0, 1]
    assert v.tolist() == [vth << 6, 0]  # neuron 1 fired at step 2 and was reset


def test_bias_exp_negative_floors_like_numpy():
    a = torch.zeros(1, 2, dtype=torch.int32)
    _, _, v = cuba_lif_fixed(a, 0, 0, 131071, bias_mant=torch.tensor([-5, 5],
                             dtype=torch.int32), bias_exp=-1, backend="torch")
    assert v.tolist() == [int(np.right_shift(np.int32(-5), 1)), 2]  # -3, 2


def test_bad_arguments():
    a = torch.zeros(2, 3, dtype=torch.int32)
    with pytest.raises(TypeError, match="a has dtype"):
        cuba_lif_fixed(a.float(), 0, 0, 10)
    with pytest.raises(ValueError, match="du"):
        cuba_lif_fixed(a, 4096, 0, 10)
    with pytest.raises(ValueError, match="du"):
        cuba_lif_fixed(a, -2, 0, 10)
    with pytest.raises(TypeError, match="dv"):
        cuba_lif_fixed(a, 0, 0.5, 10)
    with pytest.raises(ValueError, match="vth_mant"):
        cuba_lif_fixed(a, 0, 0, 1 << 17)
    with pytest.raises(ValueError, match="T = 0"):
        cuba_lif_fixed(a[:0], 0, 0, 10)
    with pytest.raises(ValueError, match="u_init"):
        cuba_lif_fixed(a, 0, 0, 10, u_init=torch.zeros(4, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"\|a\|"):
        cuba_lif_fixed(a + (1 << 24), 0, 0, 10)
    with pytest.raises(ValueError, match=r"\|a\|"):
        cuba_lif_fixed(torch.full((1, 2), -(1 << 31), dtype=torch.int32), 0, 0, 10)
    with pytest.raises(ValueError, match="bias_mant"):
        cuba_lif_fixed(a, 0, 0, 10, bias_mant=torch.zeros(2, dtype=torch.int32))
    with pytest.raises(ValueError, match="backend"):
        cuba_lif_fixed(a, 0, 0, 10, backend="cuda")


def _run_lava(a: np.ndarray, du, dv, vth, bias_mant, bias_exp):
    """Lava LIF (fixed_pt) fed a[t] by a RingBuffer source; returns spikes, u, v as [T, N]."""
    from stc.lava.compat import import_lava

    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    T, N = a.shape
    src = Source(data=a.T.copy())
    lif = LIF(shape=(N,), du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp)
    sink = Sink(shape=(N,), buffer=T)
    src.s_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    mon_u, mon_v = Monitor(), Monitor()
    mon_u.probe(lif.u, T)
    mon_v.probe(lif.v, T)
    try:
        lif.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        spikes = sink.data.get().T
        u = mon_u.get_data()[lif.name]["u"]
        v = mon_v.get_data()[lif.name]["v"]
    finally:
        lif.stop()
    return spikes.astype(np.int64), np.asarray(u, np.int64), np.asarray(v, np.int64)


@pytest.mark.parametrize("backend,du", [("torch", 0), ("triton", 0), ("triton", -1)])
def test_matches_lava_fixed_pt_lif(backend, du):
    rng = np.random.default_rng(7)
    T, N = 12, 8
    a = rng.integers(-2500, 2500, size=(T, N)).astype(np.int32)
    a[:, 0] = 30000          # du = 0 keeps almost all current: u wraps past 2**23
    a[:, 1] = -30000         # large negative drive: v saturates at -(2**23 - 1)
    a[::3, 2] = 0            # sparse drive
    bias_mant = rng.integers(-300, 300, size=N).astype(np.int32)
    dv, vth, bias_exp = 900, 3000, 3   # du = -1: netx's iDecay = 0 (no current decay)
    s_l, u_l, v_l = _run_lava(a, du, dv, vth, bias_mant, bias_exp)
    # step the op one timestep at a time to read the whole u, v trajectory
    at = torch.from_numpy(a)
    b = torch.from_numpy(bias_mant)
    u = v = None
    ss, us, vs = [], [], []
    for t in range(T):
        s, u, v = cuba_lif_fixed(at[t:t + 1], du, dv, vth, bias_mant=b, bias_exp=bias_exp,
                                 u_init=u, v_init=v, backend=backend)
        ss.append(s[0])
        us.append(u)
        vs.append(v)
    # whole-sequence call must agree with the step-by-step one
    s_all, u_all, v_all = cuba_lif_fixed(at, du, dv, vth, bias_mant=b, bias_exp=bias_exp,
                                         backend=backend)
    assert torch.equal(s_all, torch.stack(ss)) and torch.equal(u_all, us[-1])
    assert torch.equal(v_all, vs[-1])
    np.testing.assert_array_equal(torch.stack(ss).numpy(), s_l)
    np.testing.assert_array_equal(torch.stack(us).numpy(), u_l)
    np.testing.assert_array_equal(torch.stack(vs).numpy(), v_l)
    assert (np.abs(u_l[:, 0]).max() > M - 64 * 30000) and (u_l[1:, 0] < u_l[:-1, 0]).any()
    assert v_l[:, 1].min() == -(M - 1)
    assert 0 < s_l.mean() < 1


@pytest.mark.gpu
def test_cuda_kernel_equals_cpu_reference():
    # integer arithmetic: the compiled GPU kernel must equal the CPU reference bit for bit
    a = _rand((6, 3, 1000), -6000, 9000, 21)
    bias = _rand((3, 1000), -400, 400, 22)
    u0, v0 = _rand((3, 1000), -M, M, 23), _rand((3, 1000), -M, M, 24)
    ref = cuba_lif_fixed(a, 300, 500, 2000, bias_mant=bias, bias_exp=2, u_init=u0, v_init=v0,
                         backend="torch")
    gpu = cuba_lif_fixed(a.cuda(), 300, 500, 2000, bias_mant=bias.cuda(), bias_exp=2,
                         u_init=u0.cuda(), v_init=v0.cuda(), backend="triton")
    for r, k in zip(ref, gpu):
        assert torch.equal(r, k.cpu())
