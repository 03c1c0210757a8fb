"""Wire-level checks with stc's own generated stubs: typed contents, raw byte counts, health,
reflection, JSON logs, TLS, and the staleness of the committed generated code."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import grpc
import numpy as np
import pytest
import stc_server_testnet as net
import tritonclient.grpc as grpcclient
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from stc.proto import generate
from stc.proto import inference_pb2 as pb
from stc.server.logs import JsonFormatter

from stc.client import Client


def _request(x: np.ndarray) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="lif", model_version="1", id="req-7")
    req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    return req


def test_typed_contents_equal_raw(server):
    x = net.make_input(2, seed=11)
    req = _request(x)
    req.inputs[0].contents.fp32_contents.extend(x.ravel().tolist())
    with Client(f"127.0.0.1:{server.port}") as c:
        resp = c.inference.ModelInfer(req, timeout=10)
    assert resp.id == "req-7" and not resp.outputs[0].HasField("contents")
    got = {o.name: np.frombuffer(raw, np.float32 if o.datatype == "FP32" else np.int64)
           .reshape(list(o.shape)) for o, raw in zip(resp.outputs, resp.raw_output_contents)}
    want = net.TinyLIF(net.make_weight(0)).infer({"x": x})
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("cut", [4, -4])
def test_raw_byte_count_mismatch(server, cut):
    x = net.make_input(1)
    req = _request(x)
    raw = x.tobytes()
    req.raw_input_contents.append(raw[:-cut] if cut > 0 else raw + b"\0" * -cut)
    with Client(f"127.0.0.1:{server.port}") as c, pytest.raises(grpc.RpcError) as e:
        c.inference.ModelInfer(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"expected {x.nbytes}" in e.value.details()
    assert f"x: FP32 [-1, {net.T}, {net.D_IN}]" in e.value.details()


def test_health_and_reflection(server):
    with Client(f"127.0.0.1:{server.port}") as c:
        assert c.health() == "SERVING"
        assert c.health("inference.GRPCInferenceService") == "SERVING"
        db = ProtoReflectionDescriptorDatabase(c.channel)
        services = set(db.get_services())
        assert {"inference.GRPCInferenceService", "stc.repository.BundleRepository",
                "grpc.health.v1.Health"} <= services
        desc = db.FindFileContainingSymbol("inference.GRPCInferenceService")
        assert "ModelInfer" in [m.name for m in desc.service[0].method]


def test_json_log_lines():
    record = logging.LogRecord("stc.server", logging.INFO, __file__, 1, "infer", (), None)
    record.model, record.status, record.latency_ms = "lif", "OK", 1.5
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "infer" and doc["model"] == "lif" and doc["status"] == "OK"
    assert doc["latency_ms"] == 1.5 and doc["level"] == "INFO"
    assert dt.datetime.fromisoformat(doc["ts"]).tzinfo is not None


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls(start_server, tmp_path):
    cert, key = _self_signed(tmp_path)
    server = start_server(tls_cert=str(cert), tls_key=str(key))
    x = net.make_input(1, seed=3)
    c = grpcclient.InferenceServerClient(
        url=f"localhost:{server.port}", ssl=True, root_certificates=str(cert))
    inp = grpcclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    got = c.infer("lif", [inp]).as_numpy("rate")
    np.testing.assert_array_equal(got, net.TinyLIF(net.make_weight(1)).infer({"x": x})["rate"])
    with Client(f"localhost:{server.port}", timeout=2) as plain, pytest.raises(grpc.RpcError):
        plain.live()  # plaintext client cannot talk to the TLS port


def test_generated_code_is_fresh(tmp_path):
    written = generate.generate(tmp_path)
    assert [p.name for p in written] == generate.generated_names()
    for path in written:
        committed = generate.PROTO_DIR / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale: run `python -m stc.proto.generate`")
