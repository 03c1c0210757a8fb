"""Placement plans for transformer-style graphs (SpikeAttention, residual Add)."""

import json

import pytest
import torch

from stc.errors import MappingError
from stc.ir import nodes as N
from stc.ir.graph import Graph
from stc.lava import resources as R
from stc.lava.executor import load_lava_executable
from stc.lava.mapping import MAPPING_MEMBER, map_graph


def block_graph(kind="sdsa", tokens=4, dim=8) -> Graph:
    """Input [N, D] -> Repeat -> Linear -> LIF -> SpikeAttention -> Add(residual) ->
    TokenMean -> Linear -> LIF -> TimeMean -> Output (fixed point)."""
    g = Graph()
    g.add(N.Input(name="x", shape=(tokens, dim)))
    g.add(N.Repeat(name="rep", inputs=["x"], shape=(tokens, dim), time_steps=4))
    g.add(N.Linear(name="embed", inputs=["rep"], shape=(tokens, dim), in_features=dim,
                   out_features=dim), weight=torch.full((dim, dim), 2, dtype=torch.int64))
    g.add(N.LoihiCubaLIF(name="lif0", inputs=["embed"], shape=(tokens, dim)))
    g.add(N.SpikeAttention(name="attn", inputs=["lif0"], shape=(tokens, dim), kind=kind,
                           dim=dim, num_heads=2))
    g.add(N.Add(name="res", inputs=["lif0", "attn"], shape=(tokens, dim)))
    g.add(N.TokenMean(name="tm_tok", inputs=["res"], shape=(dim,)))
    g.add(N.Linear(name="head", inputs=["tm_tok"], shape=(10,), in_features=dim,
                   out_features=10), weight=torch.full((10, dim), 2, dtype=torch.int64))
    g.add(N.LoihiCubaLIF(name="lif_out", inputs=["head"], shape=(10,)))
    g.add(N.TimeMean(name="tm", inputs=["lif_out"], shape=(10,)))
    g.add(N.Output(name="y", inputs=["tm"], shape=(10,)))
    return g


@pytest.mark.parametrize("kind,host", [("sdsa", False), ("ssa", True), ("dsformer", True)])
def test_transformer_block_gets_a_placement_plan(kind, host):
    m = map_graph(block_graph(kind))
    assert not m.executable and m.custom_nodes == ["attn", "res"]
    doc = json.loads(m.members()[MAPPING_MEMBER])
    assert set(m.members()) == {MAPPING_MEMBER} and doc["executable"] is False
    attn = next(p for p in doc["processes"] if p["node"] == "attn")
    assert ("host" in attn["execution"]) == host
    assert (f"attn.{kind}" in doc["report"]["host_layers"]) == host
    layers = [c["layer"] for c in doc["report"]["cores"]]
    # every neurocore part gets at least one core, in graph order
    want = ["lif0", "attn.q", "attn.k", "attn.v"] + ([] if host else ["attn.sdsa"]) + \
        ["attn.attn_lif", "attn.proj", "tm_tok", "lif_out"]
    assert sorted(set(layers), key=layers.index) == want
    sdsa = [c for c in doc["report"]["cores"] if c["layer"] == "attn.sdsa"]
    if not host:  # 4 N D + D neurons: AND, OR, two relays, output AND
        assert sum(c["neurons"] for c in sdsa) == 4 * 4 * 8 + 8
    res = next(p for p in doc["processes"] if p["node"] == "res")
    assert "DelayedAdd" in res["lava_process"]


def test_plan_only_mapping_is_refused_by_the_executor():
    with pytest.raises(MappingError, match="placement plan only: nodes 'attn', 'res'"):
        load_lava_executable(map_graph(block_graph()))


def test_large_transformer_needs_more_chips():
    # N = 256 tokens, D = 256: each part has 65,536 neurons with a 64 KiB kernel per core
    g = block_graph("sdsa", tokens=256, dim=256)
    with pytest.raises(MappingError, match="'ncl-1chip' has 128"):
        map_graph(g, chip_config="ncl-1chip")
    m = map_graph(g, chip_config="ncl-2chip")
    rep = m.allocation.report()
    assert rep["chips_used"] == 2 and rep["cores_used"] > R.CORES_PER_CHIP
    assert rep["inter_chip_spikes_per_step"] > 0


def test_plan_rejects_float_neurons():
    g = block_graph()
    g.nodes[g.nodes.index(g.node("lif0"))] = N.LIF(name="lif0", inputs=["embed"],
                                                   shape=(4, 8))
    with pytest.raises(MappingError, match="quantise.*'lif0' \\(LIF\\)"):
        map_graph(g)


@pytest.mark.parametrize("name,host", [("spikformer_tiny", ["block0.attn.ssa"]),
                                       ("sdt_tiny", []),
                                       ("dsformer_tiny", ["block0.attn.dsformer"])])
def test_float_model_presets_get_a_placement_estimate(name, host):
    import numpy as np

    from stc.ir.frontends.models import from_model
    from stc.lava.plan import plan_mapping
    from stc.models import create_model

    g = from_model(create_model(name).eval(), time_steps=4)
    m = plan_mapping(g, chip_config="ncl-1chip")
    rep = m.allocation.report()
    assert rep["host_layers"] == host and rep["chips_used"] == 1
    placed: dict[str, int] = {}
    for c in rep["cores"]:
        placed[c["layer"]] = placed.get(c["layer"], 0) + c["neurons"]
        assert c["neurons"] <= R.NEURONS_PER_CORE and c["in_axons"] <= R.AXONS_IN_PER_CORE
        assert c["memory_bytes"] <= R.CORE_MEMORY_BYTES
    for n in g.nodes:  # every spiking node of the graph is placed with all its neurons
        if n.OP == "LIF":
            assert placed[n.name] == int(np.prod(n.shape))
    if name == "sdt_tiny":  # SDSA core: 4 N D + D neurons (N = 16 tokens, D = 64)
        assert placed["block0.attn.sdsa"] == 4 * 16 * 64 + 64
    doc = json.loads(m.members()[MAPPING_MEMBER])
    assert doc["float_nodes"] and "quantise" in doc["note"]
