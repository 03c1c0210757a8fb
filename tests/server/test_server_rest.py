"""The OIP REST flavour (``http_port``), called with the real ``tritonclient.http`` and with plain
HTTP requests (urllib: JSON tensors and Triton's binary-data extension). References: an
in-process call of the same executable, and the gRPC answer for the same input (REST and gRPC
must return identical bytes)."""

from __future__ import annotations

import json
import socket
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest
import stc_server_testnet as net
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def _http(server, **kw) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(url=f"127.0.0.1:{server.http_port}", **kw)


def _post(server, path: str, body: bytes, headers: dict | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", data=body,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _get(server, path: str, headers: dict | None = None) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}",
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_tritonclient_http_equals_grpc_and_in_process(start_server):
    server = start_server(http_port=0)
    c = _http(server)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("lif", "1")
    md = c.get_model_metadata("lif")
    assert md["versions"] == ["1", "2"] and md["inputs"][0]["shape"] == [-1, net.T, net.D_IN]
    x = net.make_input(3, seed=12)
    want = net.TinyLIF(net.make_weight(0)).infer({"x": x})
    g = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    ginp = grpcclient.InferInput("x", list(x.shape), "FP32")
    ginp.set_data_from_numpy(x)
    via_grpc = g.infer("lif", [ginp], model_version="1")
    for binary in (True, False):
        inp = httpclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        outs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in want]
        res = c.infer("lif", [inp], model_version="1", outputs=outs)
        for name, ref in want.items():
            got = res.as_numpy(name)
            assert got.dtype == ref.dtype and got.shape == ref.shape
            np.testing.assert_array_equal(got, ref)
            assert got.tobytes() == via_grpc.as_numpy(name).tobytes()
    assert want["count"].sum() > 0
    cfg = c.get_model_config("lif", "1")
    assert cfg["max_batch_size"] == 8 and cfg["input"][0]["name"] == "x"
    stats = c.get_inference_statistics("lif", "1")["model_stats"][0]
    assert int(stats["inference_count"]) == 3 * 3  # two REST calls + one gRPC call, 3 rows
    assert [m["state"] for m in c.get_model_repository_index()] == ["READY", "READY"]
    c.unload_model("lif")
    assert not c.is_model_ready("lif")
    c.load_model("lif")
    assert c.is_model_ready("lif", "2")


def test_plain_json_and_binary_requests(start_server):
    server = start_server(http_port=0)
    x = net.make_input(2, seed=13)
    want = net.TinyLIF(net.make_weight(1)).infer({"x": x})  # latest = version 2
    doc = {"id": "r1", "inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                                   "data": x.tolist()}],  # nested lists are accepted
           "outputs": [{"name": "rate"}, {"name": "count"}]}
    status, _, body = _post(server, "/v2/models/lif/infer", json.dumps(doc).encode())
    assert status == 200
    resp = json.loads(body)
    assert resp["id"] == "r1" and resp["model_version"] == "2"
    outs = {o["name"]: o for o in resp["outputs"]}
    assert list(outs) == ["rate", "count"]
    np.testing.assert_array_equal(np.array(outs["rate"]["data"], np.float32).reshape(
        outs["rate"]["shape"]), want["rate"])
    assert outs["count"]["datatype"] == "INT64" and outs["count"]["data"] == \
        want["count"].tolist()
    # binary-data extension, built by hand: JSON header + raw little-endian input bytes
    raw = x.astype("<f4").tobytes()
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "count", "parameters": {"binary_data": True}}]
                         }).encode()
    status, headers, body = _post(server, "/v2/models/lif/versions/2/infer", header + raw,
                                  {"Inference-Header-Content-Length": str(len(header)),
                                   "Content-Type": "application/octet-stream"})
    assert status == 200
    n = int(headers["Inference-Header-Content-Length"])
    meta = json.loads(body[:n])
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == 8 * 2
    got = np.array(struct.unpack("<2q", body[n:]), np.int64)
    np.testing.assert_array_equal(got, want["count"])


def test_rest_errors_and_validation_shared_with_grpc(start_server):
    server = start_server(http_port=0, max_batch=4)
    c = _http(server)
    x = net.make_input(1)

    def infer(arr, model="lif", datatype="FP32"):
        inp = httpclient.InferInput("x", list(arr.shape), datatype)
        inp.set_data_from_numpy(arr)
        return c.infer(model, [inp])

    cases = [
        (lambda: infer(x, model="nope"), "404", "not loaded"),
        (lambda: infer(x.astype(np.float64), datatype="FP64"), "400", "expected signature"),
        (lambda: infer(np.full_like(x, np.nan)), "400", "NaN"),
        (lambda: infer(net.make_input(5)), "400", "at most 4 rows"),
    ]
    for call, status, text in cases:
        with pytest.raises(InferenceServerException) as e:
            call()
        assert e.value.status() == status and text in e.value.message(), e.value.message()
    bad = [b"not json", json.dumps({"inputs": [{"name": "x"}]}).encode(), b"[" * 200_000,
           json.dumps({"inputs": [], "outputs": "rate"}).encode(),
           json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1],
                                   "parameters": 3}]}).encode(),
           json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, net.T, net.D_IN],
                                   "data": [1.0, 2.0]}]}).encode()]
    for body in bad:
        status, _, resp = _post(server, "/v2/models/lif/infer", body)
        assert status == 400 and "error" in json.loads(resp)
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/lif/infer HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 73400320\r\n\r\n{")  # claims 70 MiB, sends 1 byte
        assert sock.recv(64).startswith(b"HTTP/1.1 413")  # body bound: max_request_bytes + 1 MiB


def test_rest_token_read_only_and_health(start_server):
    server = start_server(http_port=0, token="s3cret", read_only=True)
    assert _get(server, "/v2/health/live") == 200 and _get(server, "/v2/health/ready") == 200
    assert _get(server, "/v2/models/lif") == 401
    auth = {"Authorization": "Bearer s3cret"}
    assert _get(server, "/v2/models/lif", auth) == 200
    assert _get(server, "/v2/models/lif", {"Authorization": "Bearer nope"}) == 401
    c = _http(server)
    with pytest.raises(InferenceServerException) as e:
        c.unload_model("lif", headers=auth)
    assert e.value.status() == "403"
    x = net.make_input(1, seed=2)
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    got = c.infer("lif", [inp], headers=auth).as_numpy("spikes")
    np.testing.assert_array_equal(got, net.TinyLIF(net.make_weight(1)).infer({"x": x})["spikes"])


def test_real_bundle_rest_equals_grpc(tmp_path):
    import torch
    from stc.server.app import InferenceServer, ServerConfig
    from torch import nn

    from stc.bundle import write_bundle
    from stc.ir.frontends.torch import from_torch
    from stc.nn.neurons import LIF
    from stc.runtime import load_bundle

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), LIF(backend="torch")).eval()
    root = tmp_path / "repo"
    (root / "tiny" / "1").mkdir(parents=True)
    path = write_bundle(root / "tiny" / "1" / "model.stcb",
                        from_torch(model, (6,), time_steps=4), name="tiny")
    x = (np.random.default_rng(3).normal(size=(3, 6)) * 8).astype(np.float32)
    want = load_bundle(path).infer({"input": x})["output"]
    server = InferenceServer(ServerConfig(host="127.0.0.1", port=0, http_port=0), root)
    server.start()
    try:
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        rest = _http(server).infer("tiny", [inp]).as_numpy("output")
        ginp = grpcclient.InferInput("input", list(x.shape), "FP32")
        ginp.set_data_from_numpy(x)
        grpc_out = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.port}").infer(
            "tiny", [ginp]).as_numpy("output")
    finally:
        server.stop(grace=2)
    assert want.sum() > 0
    assert rest.tobytes() == grpc_out.tobytes() == want.tobytes()
