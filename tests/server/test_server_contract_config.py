"""A bundle's input contract reaches OIP clients: tritonclient's get_model_config shows each
input's contract (JSON in Triton's ModelConfig.parameters), equal to what the bundle holds, and
the server refuses an out-of-range request naming the range."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
from stc.server.app import InferenceServer, ServerConfig
from torch import nn

from stc.bundle import read_bundle, write_bundle
from stc.ir.frontends.torch import from_torch
from stc.nn.neurons import LIF
from stc.runtime.contract import attach_contract, contracts_of, make_contract


@pytest.fixture
def contract_server(tmp_path):
    torch.manual_seed(0)
    graph = from_torch(nn.Sequential(nn.Linear(6, 5), LIF(backend="torch")).eval(), (6,),
                       time_steps=4)
    attach_contract(graph, make_contract((6,), lo=0.0, hi=1.0, step=1 / 16, scale=1 / 16,
                                         raw_range=(0, 16), description="grey level / 16"))
    path = tmp_path / "repo" / "tiny" / "1" / "model.stcb"
    path.parent.mkdir(parents=True)
    write_bundle(path, graph, name="tiny", version="1")
    server = InferenceServer(ServerConfig(host="127.0.0.1", port=0), tmp_path / "repo")
    server.start()
    yield server, path
    server.stop(grace=2)


def test_model_config_carries_the_input_contract(contract_server):
    server, path = contract_server
    want = contracts_of(read_bundle(path).graph)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    cfg = client.get_model_config("tiny", as_json=True)["config"]
    got = {k.split(".", 1)[1]: json.loads(v["string_value"])
           for k, v in cfg["parameters"].items() if k.startswith("input_contract.")}
    assert got == want and got, (got, want)
    inp = grpcclient.InferInput(next(iter(want)), [1, 6], "FP32")
    inp.set_data_from_numpy(np.full((1, 6), 16.0, np.float32))  # raw grey levels: out of range
    with pytest.raises(Exception, match=r"INVALID_ARGUMENT.*\[0, 1\]"):
        client.infer("tiny", [inp], client_timeout=30)
    client.close()


def test_serve_input_policy_preprocess_takes_raw_input(tmp_path, contract_server):
    _, path = contract_server
    from stc.runtime import load_bundle

    server = InferenceServer(ServerConfig(host="127.0.0.1", port=0, input_policy="preprocess"),
                             path.parents[2])
    server.start()
    try:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.port}")
        raw = np.random.default_rng(0).integers(0, 17, size=(2, 6)).astype(np.float32)
        exe = load_bundle(path)
        name = exe.inputs[0].name
        want = exe.infer({name: raw / 16})  # the declared preprocessing, by hand
        exe.close()
        inp = grpcclient.InferInput(name, [2, 6], "FP32")
        inp.set_data_from_numpy(raw)
        res = client.infer("tiny", [inp], client_timeout=30)
        for out, value in want.items():
            np.testing.assert_array_equal(res.as_numpy(out), value)
        client.close()
    finally:
        server.stop(grace=2)
    with pytest.raises(ValueError, match="input_policy"):
        ServerConfig(input_policy="clip").validate()
