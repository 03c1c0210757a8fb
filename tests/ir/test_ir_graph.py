"""IR graph: JSON round trip, strict parsing, and verify() errors that name the node."""

import pytest
import torch

from stc.ir import LIF, Graph, GraphError, Input, Linear, Output, Repeat, TimeMean


def small_graph() -> Graph:
    g = Graph(metadata={"note": "x"})
    g.add(Input(name="x", shape=(4,)))
    g.add(Repeat(name="enc", inputs=["x"], shape=(4,), time_steps=3))
    g.add(Linear(name="fc", inputs=["enc"], shape=(2,), in_features=4, out_features=2),
          weight=torch.randn(2, 4), bias=torch.randn(2))
    g.add(LIF(name="lif", inputs=["fc"], shape=(2,), tau=2.0, v_reset=None))
    g.add(TimeMean(name="tm", inputs=["lif"], shape=(2,)))
    g.add(Output(name="y", inputs=["tm"], shape=(2,)))
    return g


def test_json_round_trip_is_identity():
    g = small_graph().verify()
    text = g.to_json()
    h = Graph.from_json(text, g.tensors).verify()
    assert h.to_json() == text
    assert h.node("lif").v_reset is None and h.node("lif").tau == 2.0
    assert isinstance(h.node("fc"), Linear) and h.node("fc").params["weight"] == "fc.weight"


def test_verify_sorts_topologically():
    g = small_graph()
    g.nodes.reverse()
    order = [n.name for n in g.verify().nodes]
    assert order.index("x") < order.index("fc") < order.index("lif") < order.index("y")


@pytest.mark.parametrize("mutate, words", [
    (lambda g: setattr(g.node("fc"), "inputs", ["nope"]), ["'fc'", "unknown input 'nope'"]),
    (lambda g: setattr(g.node("lif"), "shape", (3,)), ["'lif'", "shape mismatch"]),
    (lambda g: g.tensors.pop("fc.weight"), ["'fc'", "missing tensor 'fc.weight'"]),
    (lambda g: setattr(g.node("enc"), "inputs", ["tm"]), ["cycle"]),
    (lambda g: g.tensors.__setitem__("fc.weight", torch.zeros(3, 4)), ["'fc'", "weight"]),
    (lambda g: setattr(g.node("tm"), "name", "lif"), ["duplicate"]),
])
def test_verify_errors_name_the_problem(mutate, words):
    g = small_graph()
    mutate(g)
    with pytest.raises(GraphError) as e:
        g.verify()
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("patch, words", [
    ({"op": "Magic"}, "unknown op"),
    ({"tau": "two"}, "wrong type"),
    ({"bogus": 1}, "unknown field"),
    ({"shape": [0]}, "positive ints"),
    ({"inputs": "fc"}, "list of strings"),
])
def test_from_dict_is_strict(patch, words):
    d = small_graph().to_dict()
    lif = next(n for n in d["nodes"] if n["name"] == "lif")
    lif.update(patch)
    with pytest.raises(GraphError, match=words):
        Graph.from_dict(d)


def test_from_json_rejects_bad_version_and_text():
    with pytest.raises(GraphError, match="ir_version"):
        Graph.from_dict({"ir_version": 99, "nodes": []})
    with pytest.raises(GraphError, match="does not parse"):
        Graph.from_json("{not json")
