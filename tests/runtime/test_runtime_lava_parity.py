"""Fixed numerics on CPU equal Lava's bit-accurate Loihi 2 simulator on the same bundle
(stc.lava's lava-sim executor, Loihi2SimCfg fixed_pt)."""

import numpy as np
import pytest
import torch
from torch import nn

from stc.bundle import write_bundle
from stc.ir.frontends import from_torch
from stc.nn import LIF
from stc.passes import quantize
from stc.runtime import load_bundle


@pytest.mark.slow
def test_fixed_cpu_equals_lava_sim(tmp_path):
    pytest.importorskip("lava", reason="lava-nc is part of this project's environment")
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 8), LIF(backend="torch"), nn.Linear(8, 3),
                      LIF(tau=4.0, backend="torch")).eval()
    with torch.no_grad():
        m[0].weight.mul_(3)
        m[2].weight.mul_(3)
        m[2].bias.add_(0.5)
    g = from_torch(m, (16,), time_steps=8)
    p = write_bundle(tmp_path / "m.stcb", g, name="mlp", fixed_graph=quantize(g)[0])
    x = (np.random.default_rng(0).random((3, 16)) < 0.5).astype(np.float32)
    cpu = load_bundle(p, backend="cpu", numerics="fixed").infer({"input": x})["output"]
    lava = load_bundle(p, backend="lava-sim")
    try:
        sim = lava.infer({"input": x})["output"]
    finally:
        lava.close()
    assert cpu.sum() > 0
    np.testing.assert_array_equal(cpu, sim)
