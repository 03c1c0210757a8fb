"""Stateful streaming: the runtime's single-step mode and the server's sequences.

Reference for every check: one stc.runtime call over all T steps (stc.runtime.interpreter's
execute, or a plain non-sequence ModelInfer). A stream of T one-step requests must give exactly
the same outputs, for an LIF MLP and spikformer_tiny, in float and fixed numerics, through
tritonclient's streaming API (start_stream / async_stream_infer); concurrent sequences must
not mix state; limits and errors name the problem."""

import queue
import sys
import time
from pathlib import Path

import edge_nets
import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
from stc.server.app import InferenceServer, ServerConfig

from stc.bundle import write_bundle
from stc.ir.frontends.models import from_model
from stc.passes import fold_batchnorm, quantize
from stc.runtime.interpreter import execute
from stc.runtime.stream import Stepper

sys.path.insert(0, str(Path(__file__).parents[1] / "lava"))
from transformer_nets import active_model, pixels  # noqa: E402

T = 4


@pytest.fixture(scope="module")
def spikformer():
    g = from_model(active_model("spikformer_tiny"))
    gf, _ = fold_batchnorm(g)
    q, _ = quantize(gf, probe=pixels(8, seed=3))
    return g, q


def _stream(stepper, x, steps=(1,) * T):
    state, out = None, None
    for k in steps:
        out, state = stepper.step({"input": x}, state, steps=k)
    return out["output"], state


@pytest.mark.parametrize("numerics", ["float", "fixed"])
@pytest.mark.parametrize("batch", [1, 3])
def test_single_steps_equal_one_call_mlp(numerics, batch):
    g, q = edge_nets.graphs(0)
    graph = g if numerics == "float" else q
    x = torch.randint(0, 4, (batch, edge_nets.D_IN)).float()
    one = execute(graph, {"input": x}, numerics=numerics, time_steps=T).outputs["output"]
    st = Stepper(graph, numerics=numerics)
    got, state = _stream(st, x)
    assert torch.equal(got, one) and state.steps == T
    assert 0 < float(one.sum()) < one.numel()  # spikes, not all-or-nothing
    got2, _ = _stream(st, x, steps=(2, 1, 1))  # several steps per call
    assert torch.equal(got2, one)
    # state in, state out: the same state stepped twice gives the same result
    _, half = _stream(st, x, steps=(2,))
    a, _ = st.step({"input": x}, half, steps=2)
    b, _ = st.step({"input": x}, half, steps=2)
    assert torch.equal(a["output"], b["output"]) and torch.equal(a["output"], one)


@pytest.mark.parametrize("numerics", ["float", "fixed"])
@pytest.mark.parametrize("batch", [1, 2])
def test_single_steps_equal_one_call_spikformer_tiny(spikformer, numerics, batch):
    graph = spikformer[0] if numerics == "float" else spikformer[1]
    x = pixels(batch)
    one = execute(graph, {"input": x}, numerics=numerics, time_steps=T).outputs["output"]
    got, _ = _stream(Stepper(graph, numerics=numerics), x)
    assert torch.equal(got, one)


def test_stepper_bad_input():
    g, _ = edge_nets.graphs(0)
    st = Stepper(g)
    _, state = st.step({"input": torch.zeros(2, edge_nets.D_IN)})
    with pytest.raises(ValueError, match="started with batch 2"):
        st.step({"input": torch.zeros(3, edge_nets.D_IN)}, state)
    with pytest.raises(ValueError, match="must have shape"):
        st.step({"input": torch.zeros(2, 5)})
    with pytest.raises(ValueError, match="missing input"):
        st.step({})


@pytest.fixture
def server(tmp_path, spikformer):
    g, q = edge_nets.graphs(0)
    repo = tmp_path / "repo"
    for name, (fg, fq) in {"mlp": (g, q), "spikf": spikformer}.items():
        for numerics in ("float", "fixed"):
            d = repo / f"{name}-{numerics}" / "1"
            d.mkdir(parents=True)
            write_bundle(d / "model.stcb", fg, name=name, fixed_graph=fq, numerics=numerics)
    srv = InferenceServer(ServerConfig(host="127.0.0.1", port=0, max_sequences=3,
                                       sequence_idle_s=0.5), repo)
    srv.start()
    yield srv
    srv.stop(grace=1)


def _inp(x):
    i = grpcclient.InferInput("input", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    return i


def _stream_call(client, model, requests, timeout=30.0):
    """Send [(x, seq_id, start, end)] on one stream; returns [(output or None, error)]."""
    got = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    try:
        for x, sid, start, end in requests:
            client.async_stream_infer(model, [_inp(x)], sequence_id=sid, sequence_start=start,
                                      sequence_end=end)
        out = []
        for _ in requests:
            result, error = got.get(timeout=timeout)
            out.append((None if error else result.as_numpy("output"), error))
        return out
    finally:
        client.stop_stream()


@pytest.mark.parametrize("model", ["mlp-float", "mlp-fixed", "spikf-float", "spikf-fixed"])
def test_tritonclient_stream_equals_one_call(server, model):
    c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    x = (pixels(1).numpy() if model.startswith("spikf")  # batch 1: BLAS's one-row path
         else np.random.default_rng(1).integers(0, 4, (1, edge_nets.D_IN)).astype(np.float32))
    one = c.infer(model, [_inp(x)]).as_numpy("output")
    res = _stream_call(c, model, [(x, 7, t == 0, t == T - 1) for t in range(T)])
    assert all(e is None for _, e in res), res
    np.testing.assert_array_equal(res[-1][0], one)


def test_concurrent_sequences_do_not_mix(server):
    c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    rng = np.random.default_rng(2)
    xs = {sid: rng.integers(0, 4, (1, edge_nets.D_IN)).astype(np.float32) for sid in (11, 12)}
    want = {sid: c.infer("mlp-float", [_inp(x)]).as_numpy("output") for sid, x in xs.items()}
    assert not np.array_equal(want[11], want[12])
    reqs = [(xs[sid], sid, t == 0, t == T - 1) for t in range(T) for sid in (11, 12)]
    res = _stream_call(c, "mlp-float", reqs)
    assert all(e is None for _, e in res), res
    np.testing.assert_array_equal(res[-2][0], want[11])
    np.testing.assert_array_equal(res[-1][0], want[12])
    # unary ModelInfer with the same parameters works too (string ids)
    for t in range(T):
        r = c.infer("mlp-float", [_inp(xs[11])], sequence_id="cam-1", sequence_start=t == 0,
                    sequence_end=t == T - 1)
    np.testing.assert_array_equal(r.as_numpy("output"), want[11])


def test_sequence_errors_limits_and_idle_timeout(server):
    c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    x = np.ones((1, edge_nets.D_IN), np.float32)
    res = _stream_call(c, "mlp-float", [
        (x, 5, False, False),                         # never started
        (x, 6, True, True), (x, 6, False, False),     # step after sequence_end
        (np.ones((1, 5), np.float32), 8, True, False),  # bad shape: no state left behind
        (x, 8, False, False)])
    errs = [str(e) if e else "" for _, e in res]
    assert "never started" in errs[0] and errs[1] == ""
    assert "ended (sequence_end was sent)" in errs[2]
    assert "INVALID_ARGUMENT" in errs[3] and "never started" in errs[4]
    assert len(server.sequences) == 0
    res = _stream_call(c, "mlp-float", [(x, sid, True, False) for sid in (1, 2, 3, 4)])
    assert [e is None for _, e in res[:3]] == [True] * 3  # the cap is 3 live sequences
    assert "RESOURCE_EXHAUSTED" in str(res[3][1]) and "limit is 3" in str(res[3][1])
    deadline = time.monotonic() + 10
    while len(server.sequences) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(server.sequences) == 0  # freed by the idle timeout (0.5 s)
    res = _stream_call(c, "mlp-float", [(x, 1, False, False)])
    assert "freed after 0.5 s without a request" in str(res[0][1])


def test_temporal_input_and_timesteps_parameter(tmp_path):
    """A temporal-input graph ([B, k, D] per request) and the ``timesteps`` parameter of a
    static-input graph, both through the server, against one call."""
    from stc.ir.frontends import from_torch

    g_static, _ = edge_nets.graphs(0)
    g_temporal = from_torch(edge_nets.mlp(0), (edge_nets.D_IN,), temporal_input=True,
                            readout="spikes")
    repo = tmp_path / "repo"
    for name, g in (("static", g_static), ("temporal", g_temporal)):
        (repo / name / "1").mkdir(parents=True)
        write_bundle(repo / name / "1" / "model.stcb", g, name=name)
    srv = InferenceServer(ServerConfig(host="127.0.0.1", port=0), repo)
    srv.start()
    try:
        c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{srv.port}")
        rng = np.random.default_rng(3)
        x = rng.integers(0, 4, (1, edge_nets.D_IN)).astype(np.float32)
        one = c.infer("static", [_inp(x)]).as_numpy("output")
        for t in range(2):
            r = c.infer("static", [_inp(x)], sequence_id=21, sequence_start=t == 0,
                        sequence_end=t == 1, parameters={"timesteps": 2})
        np.testing.assert_array_equal(r.as_numpy("output"), one)
        xt = rng.integers(0, 4, (2, 6, edge_nets.D_IN)).astype(np.float32)  # [B, T=6, D]
        one = c.infer("temporal", [_inp(xt)]).as_numpy("output")  # [B, T, 3] spikes
        parts = [c.infer("temporal", [_inp(np.ascontiguousarray(xt[:, a:b]))],
                         sequence_id=22, sequence_start=a == 0, sequence_end=b == 6)
                 .as_numpy("output") for a, b in ((0, 1), (1, 4), (4, 6))]
        assert [p.shape[1] for p in parts] == [1, 3, 2]
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), one)
        assert one.sum() > 0
    finally:
        srv.stop(grace=1)
