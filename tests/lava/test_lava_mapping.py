"""IR -> netx mapping, bundle members, Loihi 2 resource limits and allocation."""

import io
import json
import math

import h5py
import numpy as np
import pytest
import torch
from lava_nets import digits_mlp, mlp_graph

from stc.errors import MappingError
from stc.ir import nodes as N
from stc.lava import resources as R
from stc.lava.mapping import MAPPING_MEMBER, NETX_MEMBER, graph_to_layers, map_graph
from stc.lava.netx_export import export_netx


def test_members_hold_netx_file_and_mapping_json():
    layers, T = digits_mlp()
    m = map_graph(mlp_graph(layers, T), chip_config="ncl-1chip")
    mem = m.members()
    assert set(mem) == {NETX_MEMBER, MAPPING_MEMBER}
    with h5py.File(io.BytesIO(mem[NETX_MEMBER]), "r") as f:
        assert sorted(f["layer"].keys()) == ["0", "1", "2"]
        assert f["layer/0/type"][0] == b"input"
        assert list(f["layer/0/shape"][()]) == [64]
        assert f["layer/1/type"][0] == b"dense"
        np.testing.assert_array_equal(f["layer/1/weight"][()], layers[1].weight)
        assert f["layer/2/neuron/type"][0] == b"CUBA"
        assert int(f["layer/2/neuron/vThMant"][()]) == layers[2].neuron.v_th_mant
        assert int(f["layer/1/neuron/iDecay"][()]) == layers[1].neuron.i_decay
    # export_netx is the same file, and deterministic (the bundle loader compares bytes)
    assert export_netx(mlp_graph(layers, T)) == mem[NETX_MEMBER]
    doc = json.loads(mem[MAPPING_MEMBER])
    assert doc["time_steps"] == T and doc["report"]["cores_used"] == 2
    assert doc["report"]["chips_used"] == 1
    assert [p["node"] for p in doc["processes"]] == ["x", "lif0", "lif1"]


def test_netx_loads_the_export():
    from stc.lava.compat import import_lava

    netx = import_lava(netx=True)
    layers, T = digits_mlp()
    m = map_graph(mlp_graph(layers, T))
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "n.net")
        with open(p, "wb") as fh:
            fh.write(m.netx_bytes)
        net = netx.hdf5.Network(net_config=p)
        assert len(net) == 2
        assert net.inp.shape == (64,) and net.out.shape == (10,)


def test_unmappable_nodes_are_named():
    layers, T = digits_mlp()
    g = mlp_graph(layers, T, time_mean=False)
    out = g.node("y")
    g.nodes.remove(out)
    g.add(N.Add(name="res", inputs=["lif0", "lif0"], shape=(32,)))
    g.add(N.Output(name="y", inputs=["lif1"], shape=(10,)))
    with pytest.raises(MappingError, match=r"'res' \(Add\).*DelayedAdd"):
        graph_to_layers(g)
    g2 = mlp_graph(layers, T)
    g2.node("lif0").v_th_mant = 1 << 20
    with pytest.raises(MappingError, match="lif0.*v_th_mant"):
        graph_to_layers(g2)
    g3 = mlp_graph(layers, T)
    g3.tensors["fc0.weight"] = g3.tensors["fc0.weight"] + 1  # odd mixed-sign weights
    with pytest.raises(MappingError, match="fc0.*even"):
        graph_to_layers(g3)


def test_chip_config_parsing():
    assert R.parse_chip_config("ncl-1chip") == 1
    assert R.parse_chip_config("ncl-2chip") == 2
    for bad in ("ncl-0chip", "loihi3", "ncl-chip"):
        with pytest.raises(ValueError, match="ncl-<N>chip"):
            R.parse_chip_config(bad)


def test_per_core_capacity_follows_the_documented_limits():
    # dense fan-in 1000: memory bound n * (8 + 1000) <= 192 KiB
    d = R.LayerDemand(name="fc", neurons=5000, fan_in=1000, in_size=1000)
    assert R.per_core_capacity(d) == (192 * 1024) // (8 + 1000)
    # tiny fan-in: the 8,192 neurons-per-core limit binds
    d = R.LayerDemand(name="fc", neurons=20000, fan_in=4, in_size=4)
    assert R.per_core_capacity(d) == 8192
    with pytest.raises(MappingError, match="fan-in limit of 4096"):
        R.per_core_capacity(R.LayerDemand(name="big", neurons=10, fan_in=5000, in_size=5000))


def test_too_large_for_one_chip_needs_two():
    # 200 x 195 neurons at fan-in 1000 -> 200 * ceil(195 / 195) cores... use one big layer
    n = 195 * 200  # 200 cores at 195 neurons per core
    demands = [R.LayerDemand(name="huge", neurons=n, fan_in=1000, in_size=1000, sources=[]),
               R.LayerDemand(name="out", neurons=10, fan_in=n // 100, in_size=n // 100,
                             sources=["huge"], firing_rate=0.5)]
    demands[0].firing_rate = 0.2
    with pytest.raises(MappingError, match=r"needs 201 neurocores.*'ncl-1chip' has 128"):
        R.allocate(demands, "ncl-1chip")
    a = R.allocate(demands, "ncl-2chip")
    assert a.cores_used == 201 and a.chips_used == 2
    # traffic: 'huge' cores on chip 0 (128 of them) send to 'out' on chip 1
    on_chip0 = sum(c.neurons for c in a.cores if c.layer == "huge" and c.chip == 0)
    assert a.inter_chip_spikes_per_step == pytest.approx(on_chip0 * 0.2)
    rep = a.report()
    assert rep["cores"][0]["neuron_util"] == pytest.approx(195 / 8192)
    assert rep["limits"]["neurons_per_core"] == 8192 and "inferred" in \
        rep["limits"]["sources"]["neurons_per_core"]


def test_mapping_report_for_conv_uses_shared_kernels():
    from stc.ir.graph import Graph

    g = Graph()
    g.add(N.Input(name="x", shape=(1, 6, 6)))
    g.add(N.Repeat(name="rep", inputs=["x"], shape=(1, 6, 6), time_steps=3))
    g.add(N.Conv2d(name="c", inputs=["rep"], shape=(2, 6, 6), in_channels=1, out_channels=2,
                   kernel_size=(3, 3), padding=(1, 1)),
          weight=torch.full((2, 1, 3, 3), 4, dtype=torch.int64))
    g.add(N.LoihiCubaLIF(name="lif", inputs=["c"], shape=(2, 6, 6), v_th_mant=10))
    g.add(N.Pool2d(name="pool", inputs=["lif"], shape=(2, 3, 3), kind="max"))
    g.add(N.Flatten(name="fl", inputs=["pool"], shape=(18,)))
    g.add(N.Linear(name="fc", inputs=["fl"], shape=(4,), in_features=18, out_features=4),
          weight=torch.full((4, 18), 2, dtype=torch.int64))
    g.add(N.LoihiCubaLIF(name="lif2", inputs=["fc"], shape=(4,), v_th_mant=10))
    g.add(N.Output(name="y", inputs=["lif2"], shape=(4,)))
    m = map_graph(g)
    cores = m.allocation.report()["cores"]
    assert [c["layer"] for c in cores] == ["lif", "pool", "lif2"]
    assert cores[0]["memory_bytes"] == 72 * R.NEURON_STATE_BYTES + 18  # state + one kernel
    assert cores[2]["memory_bytes"] == 4 * (R.NEURON_STATE_BYTES + 18)
    assert math.isclose(cores[1]["neuron_util"], 18 / 8192)
