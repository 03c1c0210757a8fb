"""ResourceAllocator(num_chips, cores_per_chip, synapses_per_core) against stc.lava.allocate
and against the slice arithmetic by hand."""

import pytest
import torch
from torch import nn

from stc.compiler import ResourceAllocator, SpikeCompiler
from stc.errors import MappingError
from stc.lava.plan import plan_graph
from stc.lava.resources import allocate
from stc.nn import LIF


@pytest.fixture(scope="module")
def compiled():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), LIF(backend="torch"), nn.Linear(8, 3),
                      LIF(backend="torch")).eval()
    return SpikeCompiler("cpu", 3, 4).compile(m, (1, 4, 4))


def test_default_limits_equal_stc_lava_allocate(compiled):
    got = ResourceAllocator(num_chips=1).allocate(compiled)
    demands, _ = plan_graph(compiled.fixed_graph)
    want = allocate(demands, "ncl-1chip")
    assert [(c.layer, c.neurons) for c in got.cores] == [(c.layer, c.neurons)
                                                          for c in want.cores]


def test_synapse_budget_splits_layers(compiled):
    # fan-in 16 -> 40 // 16 = 2 neurons per core -> 8 / 2 = 4 cores; fan-in 8 -> 5 per core -> 1
    alloc = ResourceAllocator(num_chips=3, cores_per_chip=2, synapses_per_core=40)
    u = alloc.utilization(compiled)
    assert u["cores_used"] == 5 and u["chips_used"] == 3
    assert u["core_utilization"] == pytest.approx(5 / 6)
    assert [c["neurons"] for c in u["cores"]] == [2, 2, 2, 2, 3]
    with pytest.raises(MappingError, match="num_chips=3"):
        ResourceAllocator(num_chips=1, cores_per_chip=2, synapses_per_core=40).allocate(compiled)
    with pytest.raises(MappingError, match="synapses_per_core"):
        ResourceAllocator(synapses_per_core=10).allocate(compiled)
    with pytest.raises(ValueError, match="num_chips"):
        ResourceAllocator(num_chips=0)
