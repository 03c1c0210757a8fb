"""Triton's protocol extensions over gRPC, called with the real ``tritonclient.grpc``: model
configuration, statistics, repository index, load and unload. References: the model's own
signature (ModelMetadata), the number of rows and requests the test sent, and the files on
disk."""

from __future__ import annotations

import numpy as np
import pytest
import stc_server_testnet as net
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def _client(server) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")


def _infer(c, x: np.ndarray, version: str = "1"):
    inp = grpcclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return c.infer("lif", [inp], model_version=version)


def test_model_config_matches_metadata(start_server):
    server = start_server(max_batch=8, max_delay_ms=3)
    c = _client(server)
    cfg = c.get_model_config("lif", "1").config
    md = c.get_model_metadata("lif", "1")
    assert cfg.name == "lif" and cfg.max_batch_size == 8 and cfg.backend == "stc"
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 3000
    types = {t: f"TYPE_{t}" for t in ("FP32", "INT64")}
    for got, want in zip([*cfg.input, *cfg.output], [*md.inputs, *md.outputs], strict=True):
        assert got.name == want.name
        assert got.data_type == grpcclient.model_config_pb2.DataType.Value(types[want.datatype])
        assert list(got.dims) == list(want.shape)[1:]  # Triton: no batch dim when batching
    with pytest.raises(InferenceServerException) as e:
        c.get_model_config("missing")
    assert str(e.value.status()) == "StatusCode.NOT_FOUND"


def test_model_config_without_batching(start_server):
    server = start_server(backend="lava-sim")
    cfg = _client(server).get_model_config("lif", "1").config
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [-1, net.T, net.D_IN]


def test_inference_statistics_count_what_was_sent(start_server):
    server = start_server(max_batch=8)
    c = _client(server)
    rows = [1, 3, 2]
    for i, b in enumerate(rows):
        _infer(c, net.make_input(b, seed=i))
    with pytest.raises(InferenceServerException):
        _infer(c, np.full((1, net.T, net.D_IN), np.inf, np.float32))  # rejected: a failure
    stats = c.get_inference_statistics("lif", "1").model_stats
    assert [(s.name, s.version) for s in stats] == [("lif", "1")]
    s = stats[0]
    assert s.inference_count == sum(rows) and s.execution_count == len(rows)
    assert s.inference_stats.success.count == len(rows) and s.inference_stats.fail.count == 1
    assert s.inference_stats.queue.count == len(rows)
    assert s.inference_stats.compute_infer.count == len(rows)
    assert s.inference_stats.success.ns >= s.inference_stats.compute_infer.ns > 0
    assert sorted(b.batch_size for b in s.batch_stats) == sorted(rows)
    assert s.last_inference > 0
    everything = c.get_inference_statistics().model_stats  # "" = every loaded model
    assert [(m.name, m.version) for m in everything] == [("lif", "1"), ("lif", "2")]
    assert everything[1].inference_count == 0


def test_repository_index_load_unload(server, repo_dir):
    c = _client(server)
    index = c.get_model_repository_index().models
    assert [(m.name, m.version, m.state) for m in index] == [("lif", "1", "READY"),
                                                            ("lif", "2", "READY")]
    c.unload_model("lif")
    assert not c.is_model_ready("lif")
    index = c.get_model_repository_index().models
    assert {m.state for m in index} == {"UNAVAILABLE"}
    with pytest.raises(InferenceServerException) as e:
        _infer(c, net.make_input(1))
    assert str(e.value.status()) == "StatusCode.NOT_FOUND"
    c.load_model("lif")
    assert c.is_model_ready("lif", "1") and c.is_model_ready("lif", "2")
    x = net.make_input(2, seed=3)
    np.testing.assert_array_equal(_infer(c, x, "2").as_numpy("spikes"),
                                  net.TinyLIF(net.make_weight(1)).infer({"x": x})["spikes"])
    with pytest.raises(InferenceServerException) as e:
        c.load_model("absent")
    assert str(e.value.status()) == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as e:
        c.load_model("lif", config='{"max_batch_size": 64}')  # overrides are refused
    assert str(e.value.status()) == "StatusCode.INVALID_ARGUMENT"
    assert "model_repository" in c.get_server_metadata().extensions
