"""Dynamic batching, cancelled requests, deadlines and graceful shutdown, over real gRPC."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import stc_server_testnet as net
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from stc.client import Client


def _infer(port: int, x: np.ndarray, version: str = "1") -> dict[str, np.ndarray]:
    c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    inp = grpcclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    res = c.infer("lif", [inp], model_version=version)
    return {n: res.as_numpy(n) for n in ("spikes", "rate", "count")}


def test_dynamic_batching_merges_and_maps_back(start_server, repo_dir):
    # each run takes 300 ms, so requests that arrive while one runs queue up and merge even on
    # a loaded machine whose client threads reach the server one at a time
    net.write_model(repo_dir / "lif" / "1" / "model.stcb", net.make_weight(0), version="1",
                    delay_ms=300)
    server = start_server(max_batch=8, max_delay_ms=200)
    inputs = [net.make_input(1 + i % 2, seed=100 + i) for i in range(8)]  # 12 rows in all
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda x: _infer(server.port, x), inputs))
    ref_exe = net.load(repo_dir / "lif" / "1" / "model.stcb")
    for x, got in zip(inputs, results):  # every caller gets the rows of ITS input
        want = ref_exe.infer({"x": x})
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
    calls = server.repository.get("lif", "1").executable.calls
    assert sum(calls) == 12 and max(calls) > 1 and max(calls) <= 8
    m = server.metrics
    label = {"model": "lif:1"}
    assert m.value("stc_batch_size_sum", label) == 12
    assert m.value("stc_batch_size_count", label) == len(calls) < 8  # fewer runs than requests
    assert m.value("stc_requests_total", {"model": "lif", "version": "1", "status": "OK"}) == 8
    spikes = sum(int(r["count"].sum()) for r in results)
    assert m.value("stc_spikes_total", label) == spikes > 0


def test_no_batching_on_lava_backends(start_server):
    server = start_server(backend="lava-sim", max_batch=8, max_delay_ms=100)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: _infer(server.port, net.make_input(2, seed=i)), range(4)))
    assert server.repository.get("lif", "1").executable.calls == [2, 2, 2, 2]


def _slow_repo(tmp_path, delay_ms: float):
    root = tmp_path / "slow_repo"
    net.write_model(root / "lif" / "1" / "model.stcb", net.make_weight(0), delay_ms=delay_ms)
    return root


def test_cancelled_request_is_dropped_and_next_is_served(start_server, tmp_path):
    server = start_server(root=_slow_repo(tmp_path, 400), max_batch=1, max_request_rows=4)
    exe = server.repository.get("lif", "1").executable
    with Client(f"127.0.0.1:{server.port}") as c:
        stub = c.inference
        from stc.proto import inference_pb2 as pb

        def request(x):
            req = pb.ModelInferRequest(model_name="lif", model_version="1")
            req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
            req.raw_input_contents.append(x.tobytes())
            return req

        first = stub.ModelInfer.future(request(net.make_input(1, seed=1)))
        deadline = time.monotonic() + 5
        while not exe.calls and time.monotonic() < deadline:  # first is now running
            time.sleep(0.01)
        second = stub.ModelInfer.future(request(net.make_input(3, seed=2)))
        time.sleep(0.1)
        assert second.cancel()  # client goes away while its request waits in the queue
        first.result(timeout=5)
        x = net.make_input(2, seed=3)
        got = c.infer("lif", {"x": x}, version="1")
    assert exe.calls == [1, 2]  # the cancelled request (3 rows) never ran
    np.testing.assert_array_equal(got["spikes"], net.TinyLIF(net.make_weight(0)).infer(
        {"x": x})["spikes"])
    with pytest.raises(grpc.FutureCancelledError):
        second.result()


def test_deadline_exceeded(start_server, tmp_path):
    server = start_server(root=_slow_repo(tmp_path, 300))
    with Client(f"127.0.0.1:{server.port}") as c:
        with pytest.raises(grpc.RpcError) as e:
            c.infer("lif", {"x": net.make_input(1)}, timeout=0.1)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Triton's request parameter "timeout" (microseconds), as tritonclient sends it
    c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    x = net.make_input(1)
    inp = grpcclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    t0 = time.monotonic()
    with pytest.raises(InferenceServerException) as e:
        c.infer("lif", [inp], timeout=50_000)
    assert str(e.value.status()) == "StatusCode.DEADLINE_EXCEEDED"
    assert time.monotonic() - t0 < 0.28  # answered before the 300 ms model finished


def test_graceful_shutdown_drains_and_health_not_serving(start_server, tmp_path):
    server = start_server(root=_slow_repo(tmp_path, 500), shutdown_delay_s=2.0)
    exe = server.repository.get("lif", "1").executable
    x = net.make_input(2, seed=4)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(_infer(server.port, x)))
    worker.start()
    deadline = time.monotonic() + 5
    while not exe.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service="")).status == serving
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 5})
    stopper.start()
    seen = None
    for _ in range(100):  # bounded: at most ~1 s
        seen = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status
        if seen != serving:
            break
        time.sleep(0.01)
    assert seen == health_pb2.HealthCheckResponse.NOT_SERVING
    with Client(f"127.0.0.1:{server.port}") as c:
        assert c.ready() is False  # still reachable, no longer ready ...
        late = c.infer("lif", {"x": x})  # ... but still serving during the shutdown delay
    np.testing.assert_array_equal(late["spikes"],
                                  net.TinyLIF(net.make_weight(0)).infer({"x": x})["spikes"])
    worker.join(5)
    stopper.join(10)
    want = net.TinyLIF(net.make_weight(0)).infer({"x": x})  # the in-flight call completed
    np.testing.assert_array_equal(result["spikes"], want["spikes"])
    assert exe.closed
    with Client(f"127.0.0.1:{server.port}", timeout=1) as c, pytest.raises(grpc.RpcError):
        c.live()
    channel.close()
