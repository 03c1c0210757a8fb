"""A briefly trained digits MLP SNN through the whole toolchain: torch model -> IR
(from_torch) -> quantise to Loihi fixed point (stc.passes) -> Lava mapping -> lava-sim; its
held-out outputs equal the runtime's fixed mode (CPU) bit for bit (biases included)."""

import numpy as np
import pytest
import torch
from torch import nn

pytestmark = pytest.mark.slow


def test_trained_digits_mlp_lava_sim_equals_runtime_fixed():
    from stc.ir.frontends.torch import from_torch
    from stc.lava import load_lava_executable, map_graph
    from stc.nn import LIF
    from stc.passes.quantize import quantize
    from stc.runtime.executable import Executable
    from stc.train import load_digits_split

    torch.manual_seed(0)
    d = load_digits_split()
    xtr = (d.x_train.reshape(-1, 64) * 16).round()[:480]  # integer pixels 0..16
    ytr = d.y_train[:480]
    T = 4
    seq = nn.Sequential(nn.Linear(64, 32), LIF(backend="torch"), nn.Linear(32, 10),
                        LIF(backend="torch"))
    opt = torch.optim.Adam(seq.parameters(), lr=1e-2)
    for _ in range(2):  # brief surrogate-gradient training
        for i in range(0, len(xtr), 60):
            out = seq(xtr[i:i + 60].unsqueeze(0).repeat(T, 1, 1) / 16).mean(0)
            loss = nn.functional.cross_entropy(out * 10, ytr[i:i + 60])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seq.eval()
    with torch.no_grad():
        seq[0].weight /= 16  # the graph takes integer pixels
    g = from_torch(seq, (64,), time_steps=T, readout="mean")
    qg, _ = quantize(g)
    assert any(n.OP == "LoihiCubaLIF" and "bias" in n.params for n in qg.nodes)
    mapping = map_graph(qg)
    assert mapping.allocation.cores_used == 2

    x = (d.x_test.reshape(-1, 64) * 16).round()[:6].numpy()  # held-out samples
    exe = load_lava_executable(mapping, backend="lava-sim")
    name = exe.inputs[0].name
    try:
        out = exe.infer({name: x})
    finally:
        exe.close()
    rt = Executable(qg, numerics="fixed").infer({name: x})
    (key,) = rt
    assert out[key].shape == rt[key].shape == (6, 10) and rt[key].sum() > 0
    np.testing.assert_array_equal(out[key], rt[key])
