"""Fuzzing Graph.from_dict + verify (the path a bundle's graph JSON takes): any mutation of a
valid graph gives a verified graph or a GraphError, never another exception."""

import json

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from stc.ir import Graph, GraphError
from stc.ir.frontends import from_torch
from stc.nn import LIF

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=6) | st.lists(st.integers(-2, 5), max_size=3),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids,
                                                              max_size=3),
    max_leaves=6)

torch.manual_seed(0)
MODEL = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), LIF(backend="torch"),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3), LIF(backend="torch")).eval()
BASE = from_torch(MODEL, (1, 4, 4), time_steps=2)
DICT = BASE.to_dict()


@settings(max_examples=120, deadline=None)
@given(st.integers(0, len(DICT["nodes"]) - 1), st.text(min_size=1, max_size=12), json_values)
def test_mutated_graphs_fail_cleanly(index, key, value):
    d = json.loads(json.dumps(DICT))
    node = d["nodes"][index]
    keys = sorted(node)
    node[keys[sum(map(ord, key)) % len(keys)] if key[0].isalpha() else key] = value
    try:
        Graph.from_dict(d, BASE.tensors).verify()
    except GraphError:
        pass
