"""Loading rejects tampered, truncated, wrong-schema, oversized, path-traversal and
unsigned-when-required bundles with a clear BundleError, before anything runs."""

import io
import json
import zipfile

import pytest
import torch
from torch import nn

import stc.runtime.interpreter as interp
from stc.bundle import generate_keypair, read_bundle, write_bundle
from stc.bundle.manifest import canonical_bytes
from stc.errors import BundleError
from stc.ir.frontends import from_torch
from stc.nn import LIF
from stc.runtime import load_bundle


@pytest.fixture
def bundle_bytes(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), LIF(backend="torch")).eval()
    p = write_bundle(tmp_path / "ok.stcb", from_torch(m, (4,)), name="tiny",
                     extra_members={"loihi/net.h5": b"abc"})
    return p.read_bytes()


@pytest.fixture(autouse=True)
def nothing_runs(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the network was executed")
    monkeypatch.setattr(interp, "execute", boom)
    import stc.runtime.executable as exe_mod
    monkeypatch.setattr(exe_mod, "execute", boom)


def rezip(blob: bytes, change) -> bytes:
    """Rewrite the zip with member (name, data) pairs passed through ``change``."""
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    members = change(members)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in members:
            z.writestr(zipfile.ZipInfo(name), data)
    return out.getvalue()


def edit_manifest(blob: bytes, fn) -> bytes:
    def change(members):
        out = []
        for name, data in members:
            if name == "manifest.json":
                m = json.loads(data)
                fn(m)
                data = canonical_bytes(m)
            out.append((name, data))
        return out
    return rezip(blob, change)


def load(tmp_path, blob, **kw):
    p = tmp_path / "x.stcb"
    p.write_bytes(blob)
    return load_bundle(p, **kw)


def test_valid_bundle_loads(tmp_path, bundle_bytes):
    assert load(tmp_path, bundle_bytes).name == "tiny"


@pytest.mark.parametrize("case, change, words", [
    ("tampered weights", lambda ms: [(n, d[:-1] + bytes([d[-1] ^ 1]) if n ==
                                      "weights.safetensors" else d) for n, d in ms],
     "SHA-256 of member 'weights.safetensors'"),
    ("tampered extra", lambda ms: [(n, b"abd" if n == "loihi/net.h5" else d) for n, d in ms],
     "SHA-256 of member 'loihi/net.h5'"),
    ("unlisted member", lambda ms: ms + [("loihi/more.bin", b"x")], "differ from the manifest"),
    ("missing member", lambda ms: [m for m in ms if m[0] != "loihi/net.h5"],
     "differ from the manifest"),
    ("path traversal", lambda ms: ms + [("../../etc/passwd", b"x")], "not allowed"),
    ("absolute path", lambda ms: ms + [("/tmp/evil", b"x")], "not allowed"),
    ("dotdot inside loihi", lambda ms: ms + [("loihi/../evil", b"x")], "not allowed"),
    ("no manifest", lambda ms: [m for m in ms if m[0] != "manifest.json"], "no manifest"),
    ("duplicate", lambda ms: ms + [ms[1]], "duplicate"),
    ("pickle member", lambda ms: ms + [("model.pkl", b"\x80\x04.")], "not allowed"),
])
def test_structural_tampering(tmp_path, bundle_bytes, case, change, words):
    with pytest.warns(UserWarning) if case == "duplicate" else _nullcontext():
        blob = rezip(bundle_bytes, change)
    with pytest.raises(BundleError, match=words):
        load(tmp_path, blob)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.mark.parametrize("fn, words", [
    (lambda m: m.__setitem__("schema_version", 2), "schema_version"),
    (lambda m: m.pop("graph"), "lacks required keys: graph"),
    (lambda m: m.__setitem__("code", "import os"), "unknown keys: code"),
    (lambda m: m["inputs"][0].__setitem__("datatype", "FLOAT"), "OIP datatype"),
    (lambda m: m["graph"]["nodes"][2].__setitem__("op", "Exec"), "unknown op"),
    (lambda m: m["members"]["weights.safetensors"].__setitem__("size", 1), "size"),
])
def test_wrong_schema(tmp_path, bundle_bytes, fn, words):
    with pytest.raises(BundleError, match=words):
        load(tmp_path, edit_manifest(bundle_bytes, fn))


def test_non_canonical_manifest(tmp_path, bundle_bytes):
    def change(ms):
        return [(n, json.dumps(json.loads(d), indent=1).encode() if n == "manifest.json"
                 else d) for n, d in ms]
    with pytest.raises(BundleError, match="canonical"):
        load(tmp_path, rezip(bundle_bytes, change))


@pytest.mark.parametrize("cut", [10, 200, -30])
def test_truncated(tmp_path, bundle_bytes, cut):
    with pytest.raises(BundleError, match="truncated|not a bundle"):
        load(tmp_path, bundle_bytes[:cut])


def test_oversized(tmp_path, bundle_bytes):
    with pytest.raises(BundleError, match="over the limit"):
        read_bundle(bundle_bytes, max_bytes=len(bundle_bytes) - 1)


def test_compressed_member_rejected(tmp_path, bundle_bytes):
    with zipfile.ZipFile(io.BytesIO(bundle_bytes)) as z:
        members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in members:
            z.writestr(n, d)
    with pytest.raises(BundleError, match="compressed"):
        load(tmp_path, out.getvalue())


def test_signatures(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), LIF(backend="torch")).eval()
    priv, pub = generate_keypair()
    _, other_pub = generate_keypair()
    g = from_torch(m, (4,))
    signed = write_bundle(tmp_path / "s.stcb", g, name="tiny", private_key=priv).read_bytes()
    unsigned = write_bundle(tmp_path / "u.stcb", g, name="tiny").read_bytes()
    b = read_bundle(signed, public_key=pub)
    assert b.signed and b.verified
    assert read_bundle(signed).verified is False
    with pytest.raises(BundleError, match="unsigned"):
        read_bundle(unsigned, public_key=pub)
    with pytest.raises(BundleError, match="does not verify"):
        read_bundle(signed, public_key=other_pub)
    # re-hashed but edited manifest: hashes fine, the signature catches it
    forged = edit_manifest(signed, lambda m: m["model"].__setitem__("name", "evil"))
    assert read_bundle(forged).name == "evil"
    with pytest.raises(BundleError, match="does not verify"):
        read_bundle(forged, public_key=pub)
    with pytest.raises(BundleError, match="PEM"):
        read_bundle(signed, public_key=b"not a key")


def test_random_byte_flips_fail_cleanly(tmp_path, bundle_bytes):
    """Any single corrupted byte gives a BundleError or (zip metadata only) a bundle whose
    members are unchanged - never another exception and never different weights."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    good = read_bundle(bundle_bytes)

    @settings(max_examples=150, deadline=None)
    @given(st.integers(0, len(bundle_bytes) - 1), st.integers(1, 255))
    def flip(pos, mask):
        blob = bytearray(bundle_bytes)
        blob[pos] ^= mask
        try:
            b = read_bundle(bytes(blob))
        except BundleError:
            return
        assert b.manifest == good.manifest
        assert all(torch.equal(b.graph.tensors[k], t) for k, t in good.graph.tensors.items())

    flip()
