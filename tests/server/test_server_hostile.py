"""Regression tests for the attacks of issue 13 on ``stc serve``, each reproduced on loopback with
bounded counts and times: a NaN client, an oversized request, idle upload streams, unverified
uploads, an overlapping-member zip bomb, metric-label floods, unsafe defaults, and the weaker
points (echoed input, absolute paths, load shedding, deadlines while queued, stale listings,
file modes). The reference for every "good" answer is an in-process call of the same model."""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import stc_server_testnet as net
from stc.proto import inference_pb2 as pb
from stc.proto import stc_repository_pb2 as repo_pb
from stc.server.app import ServerConfig
from stc.server.errors import ServingError
from stc.server.repository import sha256_file

from stc.client import Client


def _want(x: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    return net.TinyLIF(net.make_weight(seed)).infer({"x": x})


def _hammer(port: int, x: np.ndarray, seconds: float, version: str = "1",
            timeout: float = 10.0) -> tuple[int, list]:
    """Send ``x`` in a loop for ``seconds``; returns (successes, failures)."""
    ok, bad = 0, []
    want = _want(x, int(version) - 1)["spikes"]
    end = time.monotonic() + seconds
    with Client(f"127.0.0.1:{port}", timeout=timeout) as c:
        while time.monotonic() < end:
            try:
                got = c.infer("lif", {"x": x}, version=version)["spikes"]
                ok += 1 if np.array_equal(got, want) else 0
                if not np.array_equal(got, want):
                    bad.append("wrong result")
            except grpc.RpcError as e:
                bad.append(f"{e.code().name}: {e.details()[:200]}")
    return ok, bad


# -- 1. one NaN request fails other clients ------------------------------------------------------
def test_nan_and_batch0_fail_alone_without_traceback(start_server, caplog):
    server = start_server(max_batch=8, max_delay_ms=5)
    nan = net.make_input(1, seed=3)
    nan[0, 1, 2] = np.nan
    stop = threading.Event()
    codes = []

    def attacker():
        with Client(f"127.0.0.1:{server.port}") as c:
            while not stop.is_set():
                try:
                    c.infer("lif", {"x": nan}, version="1")
                    codes.append("OK")
                except grpc.RpcError as e:
                    codes.append(e.code().name)

    caplog.set_level(logging.INFO, logger="stc.server")
    bad = threading.Thread(target=attacker)
    bad.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: _hammer(server.port, net.make_input(1 + i % 2,
                                                                                  seed=i), 1.5),
                                    range(4)))
    finally:
        stop.set()
        bad.join(10)
    assert all(not fails for _, fails in results), results
    assert sum(ok for ok, _ in results) > 20
    assert codes and set(codes) == {"INVALID_ARGUMENT"}
    with Client(f"127.0.0.1:{server.port}") as c, pytest.raises(grpc.RpcError) as e:
        c.infer("lif", {"x": np.zeros((0, net.T, net.D_IN), np.float32)})
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "batch size is 0" in \
        e.value.details()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


# -- 2. one large request blocks the model --------------------------------------------------------
def test_oversize_request_rejected_at_once_small_ones_unaffected(start_server):
    server = start_server(max_batch=8, max_delay_ms=2)
    big = np.ones((4000, net.T, net.D_IN), np.float32)
    with Client(f"127.0.0.1:{server.port}") as c:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            c.infer("lif", {"x": big}, timeout=2)
        assert time.monotonic() - t0 < 1.5
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 8 rows" in e.value.details()
    with ThreadPoolExecutor(3) as pool:  # big requests keep coming; small ones still answer
        futs = [pool.submit(_hammer, server.port, net.make_input(2, seed=8), 1.0, "1", 2.0)]
        with Client(f"127.0.0.1:{server.port}") as c:
            for _ in range(5):
                with pytest.raises(grpc.RpcError):
                    c.infer("lif", {"x": big}, timeout=2)
        ok, fails = futs[0].result(timeout=20)
    assert ok > 5 and not fails, fails
    assert max(server.repository.get("lif", "1").executable.calls) <= 8


def test_memory_estimate_resource_exhausted():
    from stc.server.codec import check_request

    spec = [net.Spec("y", "FP32", (-1, 1000, 1000))]  # outputs of 4 MB per row
    arrays = {"x": np.zeros((4, 2), np.float32)}
    assert check_request(arrays, max_rows=8, out_specs=spec, max_bytes=17 << 20) == 4
    with pytest.raises(ServingError) as e:
        check_request(arrays, max_rows=8, out_specs=spec, max_bytes=8 << 20)
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "8388608" in e.value.message


# -- 3. upload with load unset skips verification ------------------------------------------------
def test_upload_without_load_is_verified_and_leaves_nothing(server, repo_dir, tmp_path):
    junk = tmp_path / "junk.stcb"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    before = sha256_file(repo_dir / "lif" / "1" / "model.stcb")
    with Client(f"127.0.0.1:{server.port}") as c:
        with pytest.raises(grpc.RpcError) as e:
            c.upload(junk, "lif", "1", load=False)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert str(repo_dir) not in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            c.upload(junk, "newmodel", "3", load=False)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        x = net.make_input(1, seed=4)
        np.testing.assert_array_equal(c.infer("lif", {"x": x}, version="1")["spikes"],
                                      _want(x)["spikes"])
        good = net.write_model(tmp_path / "good.stcb", net.make_weight(5))
        assert c.upload(good, "stored", "1", load=False)["loaded"] is False
    assert sha256_file(repo_dir / "lif" / "1" / "model.stcb") == before
    assert not (repo_dir / "newmodel").exists()  # no empty folders from a rejected upload
    stored = repo_dir / "stored" / "1" / "model.stcb"
    assert stored.stat().st_mode & 0o777 == 0o644
    assert not list(repo_dir.rglob("*.tmp-*"))


def test_unsigned_upload_rejected_under_public_key_even_without_load(tmp_path):
    import torch
    from stc.server.app import InferenceServer
    from torch import nn

    from stc.bundle import generate_keypair, write_bundle
    from stc.ir.frontends.torch import from_torch
    from stc.nn.neurons import LIF

    priv, pub = generate_keypair()
    (tmp_path / "pub.pem").write_bytes(pub)
    torch.manual_seed(0)
    graph = from_torch(nn.Sequential(nn.Linear(6, 5), LIF(backend="torch")).eval(), (6,),
                       time_steps=2)
    unsigned = write_bundle(tmp_path / "u.stcb", graph, name="tiny")
    signed = write_bundle(tmp_path / "s.stcb", graph, name="tiny", private_key=priv)
    assert unsigned.stat().st_mode & 0o777 == 0o644  # readable by a server of another user
    root = tmp_path / "repo"
    server = InferenceServer(ServerConfig(host="127.0.0.1", port=0,
                                          public_key=str(tmp_path / "pub.pem")), root)
    server.start()
    try:
        with Client(f"127.0.0.1:{server.port}") as c:
            with pytest.raises(grpc.RpcError) as e:
                c.upload(unsigned, "tiny", "1", load=False)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "unsigned" in e.value.details() and str(tmp_path) not in e.value.details()
            assert not (root / "tiny").exists()
            assert c.upload(signed, "tiny", "1", load=False)["loaded"] is False
            assert c.load("tiny") == ["1"]
    finally:
        server.stop(grace=2)


# -- 4. overlapping-member zip bomb --------------------------------------------------------------
def _overlap_bomb(tmp_path, members: int, kernel_bytes: int):
    """A bundle whose ``loihi/m<i>`` members overlap (member i's data holds members i+1...),
    with a manifest listing each member's true SHA-256 and size, so every per-member check
    passes; returns (path, total member bytes)."""
    import hashlib
    import struct
    import zipfile
    import zlib

    import torch
    from torch import nn

    from stc.bundle import canonical_bytes, write_bundle
    from stc.bundle.io import read_bundle
    from stc.ir.frontends.torch import from_torch
    from stc.nn.neurons import LIF

    torch.manual_seed(0)
    graph = from_torch(nn.Sequential(nn.Linear(6, 5), LIF(backend="torch")).eval(), (6,),
                       time_steps=2)
    base = write_bundle(tmp_path / "base.stcb", graph, name="tiny")
    manifest = read_bundle(base).manifest
    with zipfile.ZipFile(base) as z:
        weights = z.read("weights.safetensors")
    names = [f"loihi/m{i}".encode() for i in range(members)]
    tail = b"\0" * kernel_bytes
    datas, headers = [None] * members, [None] * members
    for i in reversed(range(members)):  # member i's data = headers/data of members i+1..
        datas[i] = tail
        crc = zlib.crc32(tail)
        headers[i] = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc,
                                 len(tail), len(tail), len(names[i]), 0) + names[i]
        tail = headers[i] + tail
    listed = {"weights.safetensors": {"sha256": hashlib.sha256(weights).hexdigest(),
                                      "size": len(weights)}}
    for name, data in zip(names, datas):
        listed[name.decode()] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest["members"] = listed
    mbytes = canonical_bytes(manifest)
    blob, central, entries = b"", b"", [(b"manifest.json", mbytes),
                                        (b"weights.safetensors", weights)]
    for name, data in entries:
        offset, crc = len(blob), zlib.crc32(data)
        blob += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, len(data),
                            len(data), len(name), 0) + name + data
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21,
                               crc, len(data), len(data), len(name), 0, 0, 0, 0, 0, offset)
        central += name
    chain_at = len(blob)
    blob += tail
    offset = chain_at
    for name, data, header in zip(names, datas, headers):
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21,
                               zlib.crc32(data), len(data), len(data), len(name), 0, 0, 0, 0,
                               0, offset) + name
        offset += len(header)
    count = len(entries) + members
    blob += central + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count,
                                  len(central), len(blob), 0)
    path = tmp_path / "bomb.stcb"
    path.write_bytes(blob)
    return path, sum(len(d) for d in datas) + len(weights) + len(mbytes)


def test_overlapping_member_zip_bomb_rejected(tmp_path, start_server):
    import zipfile

    from stc.bundle.io import read_bundle
    from stc.errors import BundleError

    path, claimed = _overlap_bomb(tmp_path, members=40, kernel_bytes=20_000)
    assert claimed > 10 * path.stat().st_size  # the bomb: far more member bytes than file
    with zipfile.ZipFile(path) as z:  # a consistent zip: each member reads with a good CRC
        assert len(z.read("loihi/m0")) > 20_000
    with pytest.raises(BundleError, match="zip bomb"):
        read_bundle(path)
    # two overlapping members whose total still fits the file: the overlap check
    small, _ = _overlap_bomb(tmp_path, members=2, kernel_bytes=10)
    with pytest.raises(BundleError, match="overlap"):
        read_bundle(small)
    from stc.server.app import InferenceServer

    server = InferenceServer(ServerConfig(host="127.0.0.1", port=0), tmp_path / "repo")
    server.start()
    try:
        with Client(f"127.0.0.1:{server.port}") as c, pytest.raises(grpc.RpcError) as e:
            c.upload(path, "tiny", "1")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "zip bomb" in \
            e.value.details()
    finally:
        server.stop(grace=2)


# -- 5. unbounded metrics cardinality -------------------------------------------------------------
def test_unknown_model_names_create_no_metric_labels(start_server):
    server = start_server(metrics_port=0)
    with Client(f"127.0.0.1:{server.port}") as c:
        for i in range(300):
            with pytest.raises(grpc.RpcError):
                c.infer(f"attacker-model-{i}" + "z" * 1000, {"x": net.make_input(1)})
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics",
                                  timeout=5).read().decode()
    assert "attacker-model" not in text and len(text) < 60_000
    assert 'stc_requests_total{model="_unknown",status="NOT_FOUND",version="_unknown"} 300.0' \
        in text


# -- 6. idle Upload streams starve the server ----------------------------------------------------
def test_idle_uploads_bounded_and_timed_out(start_server):
    server = start_server(max_workers=8, max_uploads=2, upload_idle_s=1.0)
    release = threading.Event()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = Client(f"127.0.0.1:{server.port}").repository

    def idle_chunks():
        yield repo_pb.UploadChunk(name="lif", version="9", sha256="0" * 64, data=b"PK")
        release.wait(20)  # never sends the rest

    calls = [stub.Upload.future(idle_chunks(), timeout=20) for _ in range(8)]
    try:
        t0 = time.monotonic()
        with Client(f"127.0.0.1:{server.port}", timeout=3) as c:
            assert c.health() == "SERVING"
            x = net.make_input(1, seed=6)
            np.testing.assert_array_equal(c.infer("lif", {"x": x}, version="1")["spikes"],
                                          _want(x)["spikes"])
        assert time.monotonic() - t0 < 3
        codes = []
        for f in calls:
            try:
                f.result(timeout=10)
                codes.append("OK")
            except grpc.RpcError as e:
                codes.append(e.code().name)
        assert time.monotonic() - t0 < 8  # the idle ones were cut after ~1 s, not 20 s
        assert codes.count("RESOURCE_EXHAUSTED") == 6, codes
        assert codes.count("DEADLINE_EXCEEDED") + codes.count("CANCELLED") == 2, codes
    finally:
        release.set()
        channel.close()
    assert not list(server.repository.root.rglob("*.tmp-*"))


# -- 7. unsafe defaults --------------------------------------------------------------------------
def test_safe_defaults_metrics_token_and_read_only(start_server):
    from stc.server.app import exposure_warnings

    from stc.cli.serve import serve

    assert inspect.signature(serve).parameters["host"].default.default == "127.0.0.1"
    assert ServerConfig().host == "127.0.0.1"
    exposed = ServerConfig(host="0.0.0.0")  # noqa: S104
    warnings = exposure_warnings(exposed)
    assert len(warnings) == 2 and "WITHOUT A TOKEN" in warnings[0] and "TLS" in warnings[1]
    assert exposure_warnings(ServerConfig(host="127.0.0.1")) == []
    server = start_server(metrics_port=0, token="s3cret", read_only=True)
    assert server._http.server_address[0] == "127.0.0.1"  # metrics on the server's host
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=5)
    assert e.value.code == 401
    req = urllib.request.Request(url, headers={"Authorization": "Bearer s3cret"})
    assert "stc_requests_total" in urllib.request.urlopen(req, timeout=5).read().decode()
    with Client(f"127.0.0.1:{server.port}", token="s3cret") as c:
        assert c.health() == "SERVING"
        with pytest.raises(grpc.RpcError) as err:
            c.list_bundles()
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED  # admin API not registered
        with pytest.raises(grpc.RpcError) as err:
            c.inference.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="lif"),
                                              metadata=c.metadata, timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert c.infer("lif", {"x": net.make_input(1)})["rate"].shape == (1, net.D_OUT)
    with Client(f"127.0.0.1:{server.port}") as c:  # health checks need no token
        assert c.health() == "SERVING"


# -- weaker points -------------------------------------------------------------------------------
def test_error_messages_do_not_echo_large_input(server):
    with Client(f"127.0.0.1:{server.port}") as c:
        for kwargs in ({"model": "m" * 200_000}, {"model": "lif", "version": "v" * 200_000}):
            with pytest.raises(grpc.RpcError) as e:
                c.infer(kwargs["model"], {"x": net.make_input(1)},
                        version=kwargs.get("version", ""))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND and len(e.value.details()) < 600
        with pytest.raises(grpc.RpcError) as e:
            c.infer("lif", {"y" * 100_000: net.make_input(1)})
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(e.value.details()) < 600


def test_load_shedding_when_full(start_server, tmp_path):
    root = tmp_path / "slow"
    net.write_model(root / "lif" / "1" / "model.stcb", net.make_weight(0), delay_ms=200)
    server = start_server(root=root, max_workers=2, max_pending=2, max_uploads=1,
                          max_batch=1, max_request_rows=2)
    x = net.make_input(1, seed=9)
    with Client(f"127.0.0.1:{server.port}", timeout=15) as c:
        futs = [c.inference.ModelInfer.future(_raw_request(x), timeout=15) for _ in range(16)]
        codes = []
        for f in futs:
            try:
                f.result()
                codes.append("OK")
            except grpc.RpcError as e:
                codes.append(e.code().name)
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert 2 <= codes.count("OK") <= 6 and codes.count("RESOURCE_EXHAUSTED") >= 10, codes


def _raw_request(x: np.ndarray, version: str = "1") -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="lif", model_version=version)
    req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(x.tobytes())
    return req


def test_deadline_honoured_while_queued(start_server, tmp_path):
    root = tmp_path / "slow"
    net.write_model(root / "lif" / "1" / "model.stcb", net.make_weight(0), delay_ms=400)
    server = start_server(root=root, max_batch=4, max_delay_ms=0)
    exe = server.repository.get("lif", "1").executable
    with Client(f"127.0.0.1:{server.port}") as c:
        first = c.inference.ModelInfer.future(_raw_request(net.make_input(1)), timeout=5)
        deadline = time.monotonic() + 5
        while not exe.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            c.inference.ModelInfer(_raw_request(net.make_input(3)), timeout=0.15)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 0.35  # answered on time, while the first still runs
        first.result()
        time.sleep(0.1)
    assert exe.calls == [1]  # the expired request never ran


def test_list_reports_a_bundle_replaced_on_disk(server, repo_dir):
    path = repo_dir / "lif" / "1" / "model.stcb"
    served = sha256_file(path)
    path.write_bytes(b"corrupt")
    with Client(f"127.0.0.1:{server.port}") as c:
        listed = {(b["name"], b["version"]): b for b in c.list_bundles()}
        resp = c.repository.List(repo_pb.ListRequest(), timeout=5)
    entry = next(b for b in resp.bundles if (b.name, b.version) == ("lif", "1"))
    assert listed[("lif", "1")]["loaded"] is False and entry.loaded_sha256 == served
    assert entry.sha256 == sha256_file(path) != served
    assert listed[("lif", "2")]["loaded"] is True
    assert os.path.exists(path)
