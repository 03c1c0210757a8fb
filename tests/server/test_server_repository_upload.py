"""Bundle upload / hot replace / list / load / unload / delete through the stc client."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
import stc_server_testnet as net
from stc.server.repository import ModelRepository, sha256_file

from stc.client import Client


def _client(server) -> Client:
    return Client(f"127.0.0.1:{server.port}")


def test_upload_hot_replace_and_corrupted_uploads_rejected(server, repo_dir, tmp_path):
    x = net.make_input(2, seed=21)
    v1 = net.TinyLIF(net.make_weight(0)).infer({"x": x})
    new_weight = net.make_weight(7)
    v1_new = net.TinyLIF(new_weight).infer({"x": x})
    assert not np.array_equal(v1["spikes"], v1_new["spikes"])  # replacement is observable
    good = net.write_model(tmp_path / "new.stcb", new_weight)
    with _client(server) as c:
        # 1. bytes corrupted in transit: digest mismatch -> DATA_LOSS, old version serves
        with pytest.raises(grpc.RpcError) as e:
            c.upload(good, "lif", "1", sha256="0" * 64)
        assert e.value.code() == grpc.StatusCode.DATA_LOSS and "SHA-256" in e.value.details()
        np.testing.assert_array_equal(c.infer("lif", {"x": x}, version="1")["spikes"],
                                      v1["spikes"])
        # 2. a corrupted bundle with a matching digest: the loader rejects it
        data = bytearray(good.read_bytes())
        data[-8:] = b"\xff" * 8  # inside the weight tensor
        bad = tmp_path / "bad.stcb"
        bad.write_bytes(bytes(data))
        with pytest.raises(grpc.RpcError) as e:
            c.upload(bad, "lif", "1")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "previous version keeps serving" in e.value.details()
        np.testing.assert_array_equal(c.infer("lif", {"x": x}, version="1")["spikes"],
                                      v1["spikes"])
        assert sha256_file(repo_dir / "lif" / "1" / "model.stcb") != sha256_file(bad)
        assert not list((repo_dir / "lif" / "1").glob("*.tmp-*"))  # staging cleaned up
        # 3. a good bundle hot-replaces version 1
        info = c.upload(good, "lif", "1")
        assert info["loaded"] and info["sha256"] == sha256_file(good)
        np.testing.assert_array_equal(c.infer("lif", {"x": x}, version="1")["spikes"],
                                      v1_new["spikes"])
        listed = {(b["name"], b["version"]): b for b in c.list_bundles()}
        assert listed[("lif", "1")]["sha256"] == sha256_file(good)
        assert set(listed) == {("lif", "1"), ("lif", "2")}


def test_upload_new_model_load_unload_delete(server, tmp_path):
    path = net.write_model(tmp_path / "m.stcb", net.make_weight(3), name="other")
    x = net.make_input(1, seed=2)
    with _client(server) as c:
        info = c.upload(path, "other", "5", load=False)
        assert not info["loaded"]
        with pytest.raises(grpc.RpcError) as e:
            c.infer("other", {"x": x})
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert c.load("other") == ["5"]
        want = net.TinyLIF(net.make_weight(3)).infer({"x": x})
        np.testing.assert_array_equal(c.infer("other", {"x": x})["rate"], want["rate"])
        assert c.metadata_of("other")["versions"] == ["5"]
        assert c.unload("other", "5") == ["5"]
        with pytest.raises(grpc.RpcError) as e:
            c.infer("other", {"x": x})
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert c.delete("other") == ["5"]
        assert ("other", "5") not in {(b["name"], b["version"]) for b in c.list_bundles()}
        with pytest.raises(grpc.RpcError) as e:
            c.upload(path, "../evil", "1")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_repository_versions_and_latest(repo_dir, tmp_path):
    net.write_model(repo_dir / "lif" / "10" / "model.stcb", net.make_weight(2), version="10")
    repo = ModelRepository(repo_dir, net.load)
    try:
        assert sorted(repo.load_all()) == [("lif", "1"), ("lif", "10"), ("lif", "2")]
        assert repo.versions("lif") == ["1", "2", "10"]  # numeric order, not string order
        assert repo.get("lif").version == "10"
    finally:
        repo.close()
    with pytest.raises(ValueError, match="backend"):
        ModelRepository(tmp_path, net.load, backend="loihi3")


def test_hot_replace_under_load_loses_no_request(start_server, tmp_path):
    server = start_server(max_batch=4, max_delay_ms=1)
    x = net.make_input(1, seed=33)
    old = net.TinyLIF(net.make_weight(0)).infer({"x": x})["spikes"]
    new_weight = net.make_weight(8)
    new = net.TinyLIF(new_weight).infer({"x": x})["spikes"]
    assert not np.array_equal(old, new)
    good = net.write_model(tmp_path / "new.stcb", new_weight)
    stop = threading.Event()
    seen, errors = [], []

    def hammer():
        with _client(server) as c:
            while not stop.is_set():
                try:
                    seen.append(c.infer("lif", {"x": x}, version="1")["spikes"])
                except grpc.RpcError as e:  # pragma: no cover - reported below
                    errors.append(e)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    with _client(server) as c:
        c.upload(good, "lif", "1")
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors, errors[0]
    kinds = [("old" if np.array_equal(s, old) else "new" if np.array_equal(s, new) else "bad")
             for s in seen]
    assert "bad" not in kinds and kinds[-1] == "new" and "old" in kinds
