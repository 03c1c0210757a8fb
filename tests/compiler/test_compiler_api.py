"""SpikeCompiler API: targets, levels, passes, run and save."""

import numpy as np
import pytest
import torch
from torch import nn

from stc.compiler import OptimizationPass, SpikeCompiler
from stc.errors import MappingError, UnsupportedTargetError
from stc.nn import LIF
from stc.runtime import load_bundle


def net():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), LIF(backend="torch"),
                      nn.Linear(8, 3), LIF(backend="torch"))
    with torch.no_grad():
        m[1].weight.mul_(3)
        m[4].weight.mul_(3)
        m[4].bias.add_(1.0)
    return m.eval()


def loop_reference(m, x, T):
    """Independent multi-step loop with the module's own layers and LIF modules."""
    xs = torch.stack([x] * T)
    for layer in m:
        xs = layer(xs) if isinstance(layer, LIF) else torch.stack([layer(z) for z in xs])
    return xs.mean(0)


def test_loihi3_is_refused_with_the_reason():
    with pytest.raises(UnsupportedTargetError, match="no public Loihi 3 toolchain.*Loihi 2"):
        SpikeCompiler(target="loihi3")


@pytest.mark.parametrize("kw, err", [({"target": "tpu"}, UnsupportedTargetError),
                                     ({"optimization_level": 4}, ValueError),
                                     ({"time_steps": 0}, ValueError)])
def test_bad_arguments(kw, err):
    with pytest.raises(err):
        SpikeCompiler(**{"target": "cpu", **kw})


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_run_matches_module_at_every_level(level):
    m = net()
    c = SpikeCompiler(target="cpu", optimization_level=level, time_steps=5)
    compiled = c.compile(m, input_shape=(1, 4, 4))
    x = torch.rand(3, 1, 4, 4)
    with torch.no_grad():
        want = loop_reference(m, x, 5)
    got = compiled.run(x)
    assert want.sum() > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert ("folded_batchnorm" in compiled.reports) == (level >= 2)
    assert (compiled.fixed_graph is not None) == (level >= 3)
    y, trains = compiled.run(x, time_steps=2, return_spike_trains=True)
    assert set(trains) == {"lif_3", "lif_5"} and trains["lif_3"].shape == (2, 3, 8)


def test_optimizer_passes_and_save(tmp_path):
    c = SpikeCompiler(target="cpu", optimization_level=0)
    opt = c.create_optimizer().add_pass(OptimizationPass.FOLD_BATCHNORM) \
        .add_pass("prune", sparsity=0.5)
    compiled = c.compile(net(), (1, 4, 4), optimizer=opt)
    assert compiled.reports["pruned"]["linear_1"] == pytest.approx(0.5)
    p = compiled.save(tmp_path / "m.stcb", name="net")
    x = np.random.default_rng(0).random((2, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(load_bundle(p).infer({"input": x})["output"],
                                  compiled.run(torch.from_numpy(x)).numpy())
    with pytest.raises(ValueError, match="unknown pass"):
        opt.add_pass("turbo")


def test_lava_target_quantises_and_errors_are_clear():
    compiled = SpikeCompiler(target="lava-sim", optimization_level=0).compile(net(), (1, 4, 4))
    assert compiled.fixed_graph is not None and "quantization" in compiled.reports
    with pytest.raises(MappingError, match="GELU"):
        SpikeCompiler(target="cpu").compile(nn.Sequential(nn.GELU()), (4,))
    with pytest.raises(ValueError, match="input_shape"):
        SpikeCompiler(target="cpu").compile(net())
    with pytest.raises(TypeError, match="model"):
        SpikeCompiler(target="cpu").compile(42, (4,))
    if not torch.cuda.is_available():
        with pytest.raises(UnsupportedTargetError, match="CUDA"):
            SpikeCompiler(target="gpu").compile(net(), (1, 4, 4))


def test_fixed_bundle_carries_the_loihi_mapping(tmp_path):
    from stc.bundle import read_bundle
    from stc.lava.mapping import map_graph

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 8), LIF(backend="torch"), nn.Linear(8, 3),
                      LIF(backend="torch")).eval()
    compiled = SpikeCompiler(target="lava-sim", optimization_level=0).compile(m, (16,))
    b = read_bundle(compiled.save(tmp_path / "m.stcb", name="mlp"))
    assert b.manifest["metadata"]["loihi"] == "mapped"
    assert set(b.extra_members) == {"loihi/network.net", "loihi/mapping.json"}
    # the stored netx network is the mapping of the bundle's own (reloaded) fixed graph
    assert b.extra_members["loihi/network.net"] == map_graph(b.fixed_graph).netx_bytes


def test_unmappable_fixed_graph_is_bundled_with_the_reason(tmp_path, monkeypatch):
    import stc.lava.mapping as mapping
    from stc.bundle import read_bundle

    def refuse(graph):
        raise MappingError("no cores left")
    monkeypatch.setattr(mapping, "map_graph", refuse)
    compiled = SpikeCompiler(target="cpu", optimization_level=3).compile(net(), (1, 4, 4))
    b = read_bundle(compiled.save(tmp_path / "m.stcb", name="net"))
    assert b.manifest["metadata"]["loihi"] == "not mapped: no cores left"
    assert b.extra_members == {} and b.fixed_graph is not None
