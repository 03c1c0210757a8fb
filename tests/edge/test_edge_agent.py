"""The edge agent in-process (fast): verification, signatures, tokens, backend refusal, a load
error on an injected GPU, recovery from a corrupted active bundle, the repository service's
admin calls, and the hardware probe for real and with injected results."""

import importlib.util
import json
import os

import edge_nets
import grpc
import numpy as np
import pytest
import torch
from stc.edge.agent import EdgeAgent
from stc.edge.client import EdgeClient
from stc.edge.probe import choose_backend, probe

from stc.bundle import generate_keypair
from stc.client import Client
from stc.errors import UnsupportedTargetError


@pytest.fixture
def bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundles")
    return {v: edge_nets.write(d / f"v{v}.stcb", version=str(v), seed=v) for v in (1, 2)}


@pytest.fixture
def start(tmp_path):
    running = []

    def go(store="store", **kw):
        a = EdgeAgent(tmp_path / store, **kw)
        a.start()
        running.append(a)
        return a

    yield go
    for a in running:
        a.stop(grace=1)


def _code(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


def test_probe_for_real_on_this_machine():
    hw = probe()
    assert hw.cpu.cores == os.cpu_count() and hw.cpu.memory_bytes > 0
    assert (len(hw.gpus) > 0) == torch.cuda.is_available()
    assert hw.lava_sim.available == (importlib.util.find_spec("lava") is not None)
    from stc.lava.executor import loihi_available

    assert hw.loihi.available == loihi_available()
    backend, reason = choose_backend(hw, has_fixed=True)
    expect = "loihi" if hw.loihi.available else ("gpu" if hw.gpus else "cpu")
    assert backend == expect and reason


def test_probe_injected_results_choose_loihi_gpu_cpu(monkeypatch):
    gpu = [{"index": 0, "name": "NVIDIA H100", "memory_bytes": 80 << 30, "driver": "550.1",
            "source": "nvml"}]
    monkeypatch.setenv("STC_EDGE_PROBE", json.dumps(
        {"gpus": gpu, "loihi": {"available": True, "detail": "board ncl-ext-og-01"}}))
    hw = probe()
    assert hw.injected == ["gpus", "loihi"] and hw.devices()[:3] == ["loihi", "gpu", "cpu"]
    assert choose_backend(hw, has_fixed=True)[0] == "loihi"
    backend, reason = choose_backend(hw, has_fixed=False)
    assert backend == "gpu" and "no fixed graph" in reason
    assert choose_backend(hw, has_fixed=True, requested="cuda")[0] == "gpu"
    monkeypatch.setenv("STC_EDGE_PROBE", json.dumps({"gpus": [], "loihi": {
        "available": False, "detail": "none"}, "lava_sim": {"available": False,
                                                            "detail": "absent"}}))
    hw = probe()
    assert choose_backend(hw, has_fixed=True)[0] == "cpu"
    with pytest.raises(UnsupportedTargetError, match="has only cpu"):
        choose_backend(hw, has_fixed=True, requested="lava-sim")
    monkeypatch.setenv("STC_EDGE_PROBE", '{"tpu": 1}')
    with pytest.raises(ValueError, match="may only set"):
        probe()


def test_signature_token_backend_and_admin_refusals(tmp_path, start, bundles):
    priv, pub = generate_keypair()
    (tmp_path / "pub.pem").write_bytes(pub)
    a = start(public_key=str(tmp_path / "pub.pem"), token="s3cret")
    signed = edge_nets.write(tmp_path / "s3.stcb", version="3", seed=3, key=priv)
    with EdgeClient(f"127.0.0.1:{a.port}") as c:
        assert _code(c.status)[0] == grpc.StatusCode.UNAUTHENTICATED
    with EdgeClient(f"127.0.0.1:{a.port}", token="s3cret") as c:
        code, msg = _code(lambda: c.deploy(bundles[1]))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "unsigned" in msg
        code, msg = _code(lambda: c.deploy(signed, device="loihi"))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "device 'loihi'" in msg
        code, msg = _code(lambda: c.deploy(b"x" * 10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        r = c.deploy(signed)
        assert r.changed and r.model.signed and r.model.version == "3"
        assert not c.deploy(signed).changed  # re-push of the active bundle: no-op
        code, msg = _code(lambda: c.rollback("mlp"))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "no previous" in msg
        assert _code(lambda: c.rollback("nope"))[0] == grpc.StatusCode.NOT_FOUND
    with Client(f"127.0.0.1:{a.port}", token="s3cret") as c:
        with pytest.raises(grpc.RpcError) as e:
            c.delete("mlp")
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert sorted(p.name for p in (a.store.staging_dir).iterdir()) == []


def test_load_error_on_injected_gpu_keeps_the_active_version(tmp_path, start, bundles,
                                                             monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: an injected GPU would be real and load")
    a = start()
    with EdgeClient(f"127.0.0.1:{a.port}") as c:
        c.deploy(bundles[1])
        monkeypatch.setenv("STC_EDGE_PROBE", json.dumps({"gpus": [
            {"index": 0, "name": "fake", "memory_bytes": 1, "driver": "", "source": "nvml"}]}))
        assert "gpu" in c.probe(refresh=True).devices
        code, msg = _code(lambda: c.deploy(bundles[2]))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "failed to load on gpu" in msg
        (m,) = c.status().models
        assert m.version == "1" and "failed to load" in m.last_error


def test_restart_with_a_corrupted_active_bundle_rolls_back(tmp_path, start, bundles):
    a = start()
    with EdgeClient(f"127.0.0.1:{a.port}") as c:
        c.deploy(bundles[1])
        c.deploy(bundles[2])
    a.stop(grace=1)
    rec = a.store.model("mlp")["active"]
    path = a.store.bundle_file(rec)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    (a.store.staging_dir / "half.stcb").write_bytes(blob[:100])  # a push cut off by kill -9
    orphan = a.store.models_dir / "mlp" / "9-0123456789ab"
    orphan.mkdir()
    b = start()
    assert not orphan.exists() and list(b.store.staging_dir.iterdir()) == []
    m = b.store.model("mlp")
    assert m["active"]["version"] == "1" and "active 2 unusable" in m["last_error"]
    x = np.ones((1, edge_nets.D_IN), np.float32)
    with Client(f"127.0.0.1:{b.port}") as c:
        assert c.infer("mlp", {"input": x})["output"].shape == (1, 3)


def _self_signed(tmp_path):
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stc-edge-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")


def test_tls_allowed_downgrade_and_upload_through_the_repository_service(tmp_path, start,
                                                                         bundles):
    cert, key = _self_signed(tmp_path)
    a = start(tls_cert=cert, tls_key=key)
    with EdgeClient(f"127.0.0.1:{a.port}", root_certificates=cert) as c:
        assert c.deploy(bundles[2]).model.version == "2"
        r = c.deploy(bundles[1], allow_downgrade=True)
        assert (r.model.version, r.model.previous_version) == ("1", "2")
    with EdgeClient(f"127.0.0.1:{a.port}", timeout=5) as plain:  # no TLS: refused
        assert _code(plain.status)[0] == grpc.StatusCode.UNAVAILABLE
    # `stc` client Upload on an agent = a verified, self-tested deployment
    with Client(f"127.0.0.1:{a.port}", root_certificates=cert) as c:
        with pytest.raises(grpc.RpcError) as e:
            c.upload(bundles[2], "mlp", "7")
        assert "manifest says mlp:2" in e.value.details()
        assert c.upload(bundles[2], "mlp", "2")["loaded"]
    assert a.store.model("mlp")["active"]["version"] == "2"
