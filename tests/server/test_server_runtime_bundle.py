"""End to end with a REAL .stcb bundle: stc.ir.frontends.torch -> stc.bundle.write_bundle ->
served through stc.runtime.load_bundle (the server's default loader), called with tritonclient
and with the ``stc serve`` / ``stc infer`` commands; compared with an in-process
``load_bundle(...).infer`` of the same file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
from stc.server.app import InferenceServer, ServerConfig
from torch import nn

from stc.bundle import generate_keypair, write_bundle
from stc.client import Client
from stc.ir.frontends.torch import from_torch
from stc.nn.neurons import LIF
from stc.runtime import load_bundle

D_IN, D_OUT, T = 6, 5, 4


def _bundle(path: Path, seed: int, version: str = "1", private_key: bytes | None = None) -> Path:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(D_IN, D_OUT), LIF(backend="torch")).eval()
    return write_bundle(path, from_torch(model, (D_IN,), time_steps=T), name="tiny",
                        version=version, private_key=private_key)


def _x(batch: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(batch, D_IN)) * 8).astype(np.float32)


@pytest.fixture
def bundle_repo(tmp_path):
    root = tmp_path / "repo"
    (root / "tiny" / "1").mkdir(parents=True)
    _bundle(root / "tiny" / "1" / "model.stcb", seed=0)
    return root


def test_real_bundle_served_equals_in_process(bundle_repo, tmp_path):
    server = InferenceServer(ServerConfig(host="127.0.0.1", port=0), bundle_repo)
    server.start()
    try:
        c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        md = c.get_model_metadata("tiny")
        assert [(t.name, t.datatype, list(t.shape)) for t in md.inputs] == [
            ("input", "FP32", [-1, D_IN])]
        x = _x(3, seed=1)
        inp = grpcclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        got = c.infer("tiny", [inp]).as_numpy("output")
        want = load_bundle(bundle_repo / "tiny" / "1" / "model.stcb").infer({"input": x})
        np.testing.assert_array_equal(got, want["output"])
        assert want["output"].sum() > 0
        assert server.metrics.value("stc_spikes_total", {"model": "tiny:1"}) > 0
        # a tampered bundle (one weight byte flipped, zip re-written) is rejected on upload
        good = _bundle(tmp_path / "v2.stcb", seed=3, version="2")
        bad = tmp_path / "bad.stcb"
        with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
            for item in zin.infolist():
                data = zin.read(item.filename)
                if item.filename.endswith(".safetensors"):
                    data = data[:-1] + bytes([data[-1] ^ 0x01])
                zout.writestr(item, data)
        with Client(f"127.0.0.1:{server.port}") as sc:
            with pytest.raises(grpc.RpcError) as e:
                sc.upload(bad, "tiny", "1")
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "BundleError" in e.value.details()
            np.testing.assert_array_equal(sc.infer("tiny", {"input": x})["output"],
                                          want["output"])
            sc.upload(good, "tiny", "1")  # hot replace with a valid bundle
            want2 = load_bundle(good).infer({"input": x})["output"]
            np.testing.assert_array_equal(sc.infer("tiny", {"input": x})["output"], want2)
    finally:
        server.stop(grace=2)


def test_public_key_rejects_unsigned_and_foreign_bundles(tmp_path):
    priv, pub = generate_keypair()
    other_priv, _ = generate_keypair()
    (tmp_path / "pub.pem").write_bytes(pub)
    root = tmp_path / "repo"
    (root / "tiny" / "1").mkdir(parents=True)
    _bundle(root / "tiny" / "1" / "model.stcb", seed=0, private_key=priv)
    cfg = ServerConfig(host="127.0.0.1", port=0, public_key=str(tmp_path / "pub.pem"))
    server = InferenceServer(cfg, root)
    server.start()
    try:
        x = _x(1, seed=2)
        with Client(f"127.0.0.1:{server.port}") as c:
            signed = load_bundle(root / "tiny" / "1" / "model.stcb", public_key=pub)
            np.testing.assert_array_equal(c.infer("tiny", {"input": x})["output"],
                                          signed.infer({"input": x})["output"])
            for name, key in (("unsigned", None), ("foreign", other_priv)):
                path = _bundle(tmp_path / f"{name}.stcb", seed=4, private_key=key)
                with pytest.raises(grpc.RpcError) as e:
                    c.upload(path, "tiny", "2")
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert c.metadata_of("tiny")["versions"] == ["1"]
    finally:
        server.stop(grace=2)


@pytest.mark.slow
def test_stc_serve_and_stc_infer_commands(bundle_repo, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stc.cli.main", "serve", "--repository", str(bundle_repo),
         "--host", "127.0.0.1", "--port", "0", "--backend", "cpu"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            port = int(m.group(1)) if m else None
        assert port, "stc serve did not report its port"
        x = _x(2, seed=7)
        np.save(tmp_path / "x.npy", x)
        out_dir = tmp_path / "out"
        res = subprocess.run(
            [sys.executable, "-m", "stc.cli.main", "infer", "--url", f"127.0.0.1:{port}",
             "--model", "tiny", "--input", str(tmp_path / "x.npy"), "--out-dir", str(out_dir)],
            capture_output=True, text=True, timeout=60, env=env)
        assert res.returncode == 0, res.stderr
        assert "output: float32 [2, 5]" in res.stdout
        want = load_bundle(bundle_repo / "tiny" / "1" / "model.stcb").infer({"input": x})
        np.testing.assert_array_equal(np.load(out_dir / "output.npy"), want["output"])
        big = _x(19, seed=8)  # more rows than the server's max batch (8): split by stc infer
        np.save(tmp_path / "big.npy", big)
        res = subprocess.run(
            [sys.executable, "-m", "stc.cli.main", "infer", "--url", f"127.0.0.1:{port}",
             "--model", "tiny", "--input", str(tmp_path / "big.npy"), "--out-dir", str(out_dir)],
            capture_output=True, text=True, timeout=60, env=env)
        assert res.returncode == 0, res.stderr
        want = load_bundle(bundle_repo / "tiny" / "1" / "model.stcb").infer({"input": big})
        np.testing.assert_array_equal(np.load(out_dir / "output.npy"), want["output"])
        res = subprocess.run(
            [sys.executable, "-m", "stc.cli.main", "infer", "--url", f"127.0.0.1:{port}",
             "--model", "nope", "--input", f"input={tmp_path / 'x.npy'}"],
            capture_output=True, text=True, timeout=60, env=env)
        assert res.returncode == 1 and "NOT_FOUND" in res.stderr
    finally:
        proc.terminate()  # SIGTERM -> graceful shutdown
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.slow
def test_lava_sim_backend_serves_inside_the_grpc_process(tmp_path):
    """Regression: Lava forks its processes, which failed inside the server's process once
    gRPC threads ran (EOFError in Lava's shared-memory manager). The lava-sim backend now
    runs Lava in a spawned worker; served outputs equal the runtime's fixed mode."""
    from stc.passes import quantize

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D_IN, D_OUT), LIF(backend="torch")).eval()
    with torch.no_grad():
        model[0].weight.mul_(0.5)
        model[0].bias.add_(0.3)
    g = from_torch(model, (D_IN,), time_steps=T)
    root = tmp_path / "repo"
    (root / "tiny" / "1").mkdir(parents=True)
    bundle = write_bundle(root / "tiny" / "1" / "model.stcb", g, name="tiny",
                          fixed_graph=quantize(g)[0], numerics="fixed")
    x = np.round(np.abs(_x(4, seed=2))).astype(np.float32)
    want = load_bundle(bundle, backend="cpu", numerics="fixed").infer({"input": x})["output"]
    server = InferenceServer(ServerConfig(host="127.0.0.1", port=0, backend="lava-sim"), root)
    server.start()
    try:
        with Client(f"127.0.0.1:{server.port}") as c:
            got = c.infer("tiny", {"input": x})["output"]
    finally:
        server.stop(grace=5.0)
    assert want.sum() > 0
    np.testing.assert_array_equal(got, want)
