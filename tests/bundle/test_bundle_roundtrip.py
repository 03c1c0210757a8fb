"""Bundle round trip: module -> IR -> .stcb -> load -> run equals the module exactly (float,
CPU); extra loihi/ members and the fixed graph survive; writes are atomic."""

import json
import os
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from stc.kernels.lif.reference import lif_reference
from torch import nn

from stc.bundle import read_bundle, write_bundle
from stc.errors import BundleError
from stc.ir.frontends import from_torch
from stc.nn import LIF
from stc.passes import fold_batchnorm, quantize
from stc.runtime import load_bundle


def net() -> nn.Sequential:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), LIF(backend="torch"),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 6), LIF(backend="torch"))
    with torch.no_grad():
        m[1].running_var.uniform_(0.5, 1.5)
        m[0].weight.mul_(3)
        m[5].weight.mul_(3)
        m[5].bias.add_(1.2)
    return m.eval()


def module_reference(m, x, T):
    xs = [x] * T
    for layer in m:
        if isinstance(layer, LIF):
            xs = list(lif_reference(torch.stack(xs), layer.tau, layer.v_th, layer.v_reset)[0])
        else:
            xs = [layer(z) for z in xs]
    return torch.stack(xs).mean(0)


def test_round_trip_equals_module(tmp_path):
    m = net()
    g = from_torch(m, (1, 8, 8), time_steps=4)
    path = write_bundle(tmp_path / "m.stcb", g, name="cnn", version="3")
    exe = load_bundle(path, backend="cpu")
    assert (exe.name, exe.version) == ("cnn", "3")
    assert [(s.name, s.datatype, s.shape) for s in exe.inputs] == [("input", "FP32",
                                                                     [-1, 1, 8, 8])]
    assert [(s.name, s.shape) for s in exe.outputs] == [("output", [-1, 6])]
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        want = module_reference(m, x, 4).numpy()
    got = exe.infer({"input": x.numpy()})["output"]
    assert want.sum() > 0
    np.testing.assert_array_equal(got, want)
    exe.close()
    with pytest.raises(RuntimeError, match="closed"):
        exe.infer({"input": x.numpy()})


def test_members_manifest_and_no_pickle(tmp_path):
    g = from_torch(net(), (1, 8, 8))
    q, rep = quantize(fold_batchnorm(g)[0])
    extra = {"loihi/net.h5": b"\x89HDF fake", "loihi/meta/cores.json": b"{}"}
    path = write_bundle(tmp_path / "m.stcb", g, name="cnn", fixed_graph=q,
                        extra_members=extra, metadata={"quantization": rep.to_dict()})
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        assert names == ["manifest.json", "weights.safetensors", "loihi/meta/cores.json",
                         "loihi/net.h5"]
        blob = b"".join(z.read(n) for n in names)
        manifest = json.loads(z.read("manifest.json"))
        tensors = st_load(z.read("weights.safetensors"))
    assert b"\x80\x04" not in blob[:2] and b"pickle" not in blob
    assert manifest["numerics"] == "float" and manifest["fixed_graph"] is not None
    assert manifest["created"].endswith("Z") and manifest["schema_version"] == 1
    assert any(k.startswith("fixed/") and t.dtype == torch.int32 for k, t in tensors.items())
    b = read_bundle(path)
    assert b.extra_members == extra
    assert b.fixed_graph is not None and b.fixed_graph.to_json() != b.graph.to_json()
    exe = load_bundle(path, numerics="fixed")
    spikes = (np.random.default_rng(0).random((2, 1, 8, 8)) < 0.5).astype(np.float32)
    assert exe.infer({"input": spikes})["output"].shape == (2, 6)


def test_write_is_atomic(tmp_path):
    target = tmp_path / "m.stcb"
    target.write_bytes(b"the user's old file")
    g = from_torch(net(), (1, 8, 8))
    g.tensors.pop("linear_5.weight")  # a graph that fails verification
    with pytest.raises(BundleError, match="missing tensor"):
        write_bundle(target, g, name="x")
    assert target.read_bytes() == b"the user's old file"
    assert os.listdir(tmp_path) == ["m.stcb"]  # no temp file left
    with pytest.raises(BundleError, match="member name"):
        write_bundle(target, from_torch(net(), (1, 8, 8)), name="x",
                     extra_members={"../evil": b""})
    assert target.read_bytes() == b"the user's old file"
