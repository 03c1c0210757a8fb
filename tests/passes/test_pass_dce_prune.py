"""Dead-node elimination and magnitude pruning."""

import pytest
import torch

from stc.ir import Graph, Input, Linear, Output
from stc.passes import eliminate_dead_nodes, prune_magnitude


def graph_with_dead_branch() -> Graph:
    g = Graph()
    g.add(Input(name="x", shape=(4,)))
    g.add(Linear(name="a", inputs=["x"], shape=(3,), in_features=4, out_features=3),
          weight=torch.randn(3, 4))
    g.add(Linear(name="dead", inputs=["x"], shape=(2,), in_features=4, out_features=2),
          weight=torch.randn(2, 4))
    g.add(Linear(name="dead2", inputs=["dead"], shape=(2,), in_features=2, out_features=2),
          weight=torch.randn(2, 2))
    g.add(Output(name="y", inputs=["a"], shape=(3,)))
    return g.verify()


def test_dead_nodes_and_their_tensors_are_removed():
    g, removed = eliminate_dead_nodes(graph_with_dead_branch())
    assert sorted(removed) == ["dead", "dead2"]
    assert [n.name for n in g.nodes] == ["x", "a", "y"]
    assert set(g.tensors) == {"a.weight"}


def test_magnitude_pruning_zeroes_the_smallest():
    torch.manual_seed(0)
    g = graph_with_dead_branch()
    w = g.tensors["a.weight"].clone()
    p, report = prune_magnitude(g, 0.5)
    pw = p.tensors["a.weight"]
    assert report["a"] == pytest.approx(0.5)
    kept = w.abs()[pw != 0]
    dropped = w.abs()[pw == 0]
    assert kept.min() > dropped.max()
    assert torch.equal(pw[pw != 0], w[pw != 0])
    with pytest.raises(ValueError, match="sparsity"):
        prune_magnitude(g, 1.5)
