"""deploy/kserve: the manifests parse and carry the fields KServe requires, and the
container's own command line (ServingRuntime args and the Dockerfile's CMD) starts a real
`stc serve` that answers OIP v2 over gRPC (tritonclient) and REST (no Docker here: the command
runs in this venv, with /mnt/models pointed at a temporary repository and free ports)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
import yaml
from torch import nn

from stc.bundle import write_bundle
from stc.ir.frontends.torch import from_torch
from stc.nn.neurons import LIF
from stc.runtime import load_bundle

KSERVE = Path(__file__).resolve().parents[2] / "deploy" / "kserve"


def _load(name):
    return yaml.safe_load((KSERVE / name).read_text())


def test_serving_runtime_has_the_fields_kserve_requires():
    rt = _load("servingruntime.yaml")
    assert rt["apiVersion"] == "serving.kserve.io/v1alpha1" and rt["kind"] == "ServingRuntime"
    assert rt["metadata"]["name"]
    spec = rt["spec"]
    assert {"grpc-v2", "v2"} <= set(spec["protocolVersions"])
    assert any(f["name"] == "stc" for f in spec["supportedModelFormats"])
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container" and container["image"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["h2c"] == 8081  # KServe's gRPC port name
    assert "--port=8081" in container["args"] and "--repository=/mnt/models" in container["args"]


def test_inference_service_points_at_the_runtime():
    isvc = _load("inferenceservice.yaml")
    rt = _load("servingruntime.yaml")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == rt["metadata"]["name"]
    assert model["protocolVersion"] in rt["spec"]["protocolVersions"]
    assert model["modelFormat"]["name"] in {f["name"] for f in rt["spec"]["supportedModelFormats"]}
    assert model["storageUri"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dockerfile_cmd():
    text = (KSERVE / "Dockerfile").read_text().replace("\\\n", " ")
    return json.loads(re.search(r"^CMD (\[.*\])", text, re.M).group(1))


@pytest.mark.slow
@pytest.mark.parametrize("source", ["servingruntime", "dockerfile"])
def test_container_command_line_starts_a_serving_stc(tmp_path, source):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), LIF(backend="torch")).eval()
    repo = tmp_path / "models"
    (repo / "tiny" / "1").mkdir(parents=True)
    bundle = write_bundle(repo / "tiny" / "1" / "model.stcb",
                          from_torch(model, (6,), time_steps=4), name="tiny", version="1")
    if source == "servingruntime":
        c = _load("servingruntime.yaml")["spec"]["containers"][0]
        argv = c["command"] + c["args"]
    else:
        argv = _dockerfile_cmd()
    assert argv[:2] == ["stc", "serve"]
    grpc_port, http_port, metrics_port = _free_port(), _free_port(), _free_port()
    subst = {"/mnt/models": str(repo), "0.0.0.0": "127.0.0.1", "8081": str(grpc_port),  # noqa: S104
             "8080": str(http_port), "8002": str(metrics_port)}
    args = []
    for a in argv[2:]:
        for old, new in subst.items():
            a = a.replace(f"={old}", f"={new}")
        args.append(a)
    proc = subprocess.Popen([sys.executable, "-m", "stc.cli.main", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if client.is_model_ready("tiny"):
                    break
            except Exception:  # noqa: BLE001 - still starting
                pass
            assert time.monotonic() < deadline, "server did not become ready in 60 s"
            time.sleep(0.3)
        x = np.random.default_rng(0).uniform(0, 2, size=(2, 6)).astype(np.float32)
        exe = load_bundle(bundle, backend="cpu")
        name = exe.inputs[0].name
        want = exe.infer({name: x})
        exe.close()
        inp = grpcclient.InferInput(name, list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        res = client.infer("tiny", [inp], client_timeout=30)
        for out, value in want.items():
            np.testing.assert_array_equal(res.as_numpy(out), value)
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready",
                                    timeout=10) as r:
            assert r.status == 200
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
