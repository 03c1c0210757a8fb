"""Drive the server with the real ``tritonclient.grpc`` client and compare every result with an
in-process call of the same executable (the independent reference)."""

from __future__ import annotations

import numpy as np
import pytest
import stc_server_testnet as net
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def _client(server, **kw) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.port}", **kw)


def _input(x: np.ndarray, datatype: str = "FP32") -> grpcclient.InferInput:
    inp = grpcclient.InferInput("x", list(x.shape), datatype)
    inp.set_data_from_numpy(x)
    return inp


def _reference(repo_dir, version: str, x: np.ndarray) -> dict[str, np.ndarray]:
    return net.load(repo_dir / "lif" / version / "model.stcb").infer({"x": x})


def test_live_ready_and_metadata(server):
    c = _client(server)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("lif") and c.is_model_ready("lif", "1")
    assert not c.is_model_ready("lif", "7") and not c.is_model_ready("nope")
    md = c.get_model_metadata("lif")
    assert md.name == "lif" and list(md.versions) == ["1", "2"]
    assert [(t.name, t.datatype, list(t.shape)) for t in md.inputs] == [
        ("x", "FP32", [-1, net.T, net.D_IN])]
    assert [(t.name, t.datatype, list(t.shape)) for t in md.outputs] == [
        ("spikes", "FP32", [-1, net.T, net.D_OUT]), ("rate", "FP32", [-1, net.D_OUT]),
        ("count", "INT64", [-1])]
    meta = c.get_server_metadata()
    assert meta.name == "stc"


@pytest.mark.parametrize("version", ["1", "2", ""])
def test_infer_equals_in_process_call(server, repo_dir, version):
    x = net.make_input(3, seed=5)
    res = _client(server).infer("lif", [_input(x)], model_version=version)
    ref = _reference(repo_dir, version or "2", x)  # "" = latest = highest version
    for name, want in ref.items():
        got = res.as_numpy(name)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert res.get_response().model_version == (version or "2")
    assert ref["count"].sum() > 0  # the test input really makes the network spike


def test_requested_outputs_only(server, repo_dir):
    x = net.make_input(2, seed=9)
    res = _client(server).infer("lif", [_input(x)], model_version="1",
                                outputs=[grpcclient.InferRequestedOutput("count")])
    assert [o.name for o in res.get_response().outputs] == ["count"]
    np.testing.assert_array_equal(res.as_numpy("count"), _reference(repo_dir, "1", x)["count"])
    assert res.as_numpy("spikes") is None


def _status(exc_info) -> str:
    return str(exc_info.value.status())


def test_unknown_model_and_version_not_found(server):
    c = _client(server)
    x = net.make_input(1)
    with pytest.raises(InferenceServerException) as e:
        c.infer("missing", [_input(x)])
    assert _status(e) == "StatusCode.NOT_FOUND" and "missing" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        c.infer("lif", [_input(x)], model_version="9")
    assert _status(e) == "StatusCode.NOT_FOUND" and "['1', '2']" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        c.get_model_metadata("missing")
    assert _status(e) == "StatusCode.NOT_FOUND"


def test_wrong_dtype_and_shape_invalid_argument(server):
    c = _client(server)
    signature = f"x: FP32 [-1, {net.T}, {net.D_IN}]"
    with pytest.raises(InferenceServerException) as e:
        c.infer("lif", [_input(net.make_input(1).astype(np.float64), "FP64")])
    assert _status(e) == "StatusCode.INVALID_ARGUMENT"
    assert "FP64" in e.value.message() and signature in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        c.infer("lif", [_input(np.zeros((1, net.T + 1, net.D_IN), np.float32))])
    assert _status(e) == "StatusCode.INVALID_ARGUMENT" and signature in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        c.infer("lif", [_input(net.make_input(1))],
                outputs=[grpcclient.InferRequestedOutput("nope")])
    assert _status(e) == "StatusCode.INVALID_ARGUMENT" and "nope" in e.value.message()


def test_oversized_request_resource_exhausted(start_server):
    server = start_server(max_request_bytes=1024)
    c = _client(server)
    small = net.make_input(2)  # 192 bytes: accepted
    assert c.infer("lif", [_input(small)]).as_numpy("rate").shape == (2, net.D_OUT)
    with pytest.raises(InferenceServerException) as e:  # 2304 bytes: our own check
        c.infer("lif", [_input(net.make_input(24))])
    assert _status(e) == "StatusCode.RESOURCE_EXHAUSTED" and "1024" in e.value.message()
    big = np.zeros((11000, net.T, net.D_IN), np.float32)  # ~1.06 MB > gRPC's receive limit
    with pytest.raises(InferenceServerException) as e:
        c.infer("lif", [_input(big)])
    assert _status(e) == "StatusCode.RESOURCE_EXHAUSTED"


def test_token_auth(start_server):
    server = start_server(token="s3cret")
    x = net.make_input(1)
    with pytest.raises(InferenceServerException) as e:
        _client(server).infer("lif", [_input(x)])
    assert _status(e) == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException) as e:
        _client(server).infer("lif", [_input(x)], headers={"authorization": "Bearer wrong"})
    assert _status(e) == "StatusCode.UNAUTHENTICATED"
    res = _client(server).infer("lif", [_input(x)],
                                headers={"authorization": "Bearer s3cret"})
    assert res.as_numpy("rate").shape == (1, net.D_OUT)
