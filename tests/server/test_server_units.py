"""Unit checks of the codec, batcher queue bound, config validation and the metrics endpoint,
each against an independent reference (numpy byte layout, counts, an HTTP scrape)."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
import stc_server_testnet as net
from stc.proto import inference_pb2 as pb
from stc.server.app import ServerConfig
from stc.server.batcher import Batcher
from stc.server.codec import DATATYPES, decode_inputs
from stc.server.errors import ServingError


@dataclass
class _Spec:
    name: str
    datatype: str
    shape: tuple


@pytest.mark.parametrize("datatype", ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8",
                                      "UINT16", "UINT32", "UINT64", "FP32", "FP64"])
def test_typed_contents_and_raw_decode_alike(datatype):
    dtype = DATATYPES[datatype]
    rng = np.random.default_rng(0)
    want = (rng.integers(0, 2, size=(2, 3)) if datatype == "BOOL"
            else rng.integers(0, 100, size=(2, 3))).astype(dtype)
    field = {"BOOL": "bool_contents", "INT64": "int64_contents", "UINT64": "uint64_contents",
             "FP32": "fp32_contents", "FP64": "fp64_contents"}.get(
        datatype, "uint_contents" if datatype.startswith("UINT") else "int_contents")
    spec = [_Spec("a", datatype, (-1, 3))]
    typed = pb.ModelInferRequest()
    t = typed.inputs.add(name="a", datatype=datatype, shape=[2, 3])
    getattr(t.contents, field).extend(want.ravel().tolist())
    raw = pb.ModelInferRequest()
    raw.inputs.add(name="a", datatype=datatype, shape=[2, 3])
    raw.raw_input_contents.append(want.astype(want.dtype.newbyteorder("<")).tobytes())
    for req in (typed, raw):
        got = decode_inputs(req, spec, 1 << 20)["a"]
        assert got.dtype == dtype and got.shape == (2, 3)
        np.testing.assert_array_equal(got, want)


def test_decode_rejects_mixed_missing_and_out_of_range():
    spec = [_Spec("a", "INT8", (-1,))]
    req = pb.ModelInferRequest()
    req.inputs.add(name="a", datatype="INT8", shape=[1]).contents.int_contents.append(300)
    with pytest.raises(ServingError, match="outside INT8"):
        decode_inputs(req, spec, 1024)
    req = pb.ModelInferRequest()
    with pytest.raises(ServingError, match="missing") as e:
        decode_inputs(req, spec, 1024)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    req = pb.ModelInferRequest()
    req.inputs.add(name="a", datatype="INT8", shape=[1]).contents.int_contents.append(1)
    req.raw_input_contents.append(b"\x01")
    with pytest.raises(ServingError, match="one or the other"):
        decode_inputs(req, spec, 1024)
    req = pb.ModelInferRequest()
    req.inputs.add(name="a", datatype="INT8", shape=[10**9])
    with pytest.raises(ServingError) as e:  # declared size checked before any allocation
        decode_inputs(req, spec, 1024)
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_queue_bound_resource_exhausted():
    exe = net.TinyLIF(net.make_weight(0), delay_ms=300)
    b = Batcher(exe, "lif:1", max_batch=4, max_delay_ms=0, queue_size=2)
    try:
        x = {"x": net.make_input(1)}
        running = b.submit(x)
        deadline = time.monotonic() + 5
        while not exe.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = [b.submit(x), b.submit(x)]  # the queue holds 2
        with pytest.raises(ServingError) as e:
            b.submit(x)
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        for f in [running, *queued]:
            assert f.result(timeout=5)["spikes"].shape == (1, net.T, net.D_OUT)
    finally:
        b.close()
    with pytest.raises(ServingError) as e:
        b.submit(x)
    assert e.value.code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("field, value, match", [
    ("backend", "loihi3", "backend"), ("port", 70000, "port"), ("max_batch", 0, "max_batch"),
    ("request_timeout_s", 0.0, "request_timeout_s"), ("tls_cert", "c.pem", "together")])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        ServerConfig(**{field: value}).validate()
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(net.TinyLIF(net.make_weight(0)), "x", max_batch=0)


def test_prometheus_endpoint(start_server):
    server = start_server(metrics_port=0)
    port = server.metrics_port
    from stc.client import Client

    with Client(f"127.0.0.1:{server.port}") as c:
        c.infer("lif", {"x": net.make_input(2)}, version="1")
        with pytest.raises(grpc.RpcError):
            c.infer("nope", {"x": net.make_input(1)})
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'stc_requests_total{model="lif",status="OK",version="1"} 1.0' in text
    assert 'stc_requests_total{model="_unknown",status="NOT_FOUND",version="_unknown"} 1.0' \
        in text
    assert 'stc_batch_size_sum{model="lif:1"} 2.0' in text
    assert "stc_spikes_per_second" in text and "stc_request_latency_seconds_bucket" in text
    # Triton-style families, for loaded models only: 1 request, 2 rows, 1 batch
    assert 'nv_inference_request_success{model="lif",version="1"} 1.0' in text
    assert 'nv_inference_count{model="lif",version="1"} 2.0' in text
    assert 'nv_inference_exec_count{model="lif",version="1"} 1.0' in text
    assert 'nv_inference_request_success{model="lif",version="2"} 0.0' in text
    assert "nope" not in text
    assert 'stc_queue_seconds_count{model="lif:1"} 1.0' in text
    assert 'stc_compute_seconds_count{model="lif:1"} 1.0' in text


def test_failed_merged_batch_reruns_each_request_alone():
    class Picky(net.TinyLIF):
        """Refuses any batch that contains a row of 99s (a bad input the codec let through)."""

        def infer(self, inputs):
            if (inputs["x"] == 99).all(axis=(1, 2)).any():
                self.calls.append(-int(inputs["x"].shape[0]))
                raise ValueError("row of 99s")
            return super().infer(inputs)

    exe = Picky(net.make_weight(0))
    b = Batcher(exe, "lif:1", max_batch=8, max_delay_ms=500, queue_size=8)  # 4 requests merge
    try:
        goods = [net.make_input(1, seed=s) for s in range(3)]
        bad = np.full((1, net.T, net.D_IN), 99, np.float32)
        futures = [b.submit({"x": x}) for x in (*goods[:2], bad, goods[2])]
        for x, f in zip((*goods[:2], goods[2]), (*futures[:2], futures[3])):
            np.testing.assert_array_equal(f.result(timeout=10)["spikes"],
                                          net.TinyLIF(net.make_weight(0)).infer({"x": x})
                                          ["spikes"])
        with pytest.raises(ServingError) as e:
            futures[2].result(timeout=10)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "row of 99s" in \
            e.value.message
        assert exe.calls[0] == -4 and sorted(exe.calls[1:]) == [-1, 1, 1, 1]  # merged, then alone
    finally:
        b.close()
