"""SDT (membrane shortcut) in fixed point: the SDSA lowering, the shared stream unit
(stc.passes.quantize_residual) and the SDSA core, against the float model, the kernels'
float op and stc.lava's NumPy reference."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lava"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from int_guard import forbid_integer_matmul  # noqa: E402
from transformer_nets import active_model, pixels  # noqa: E402

from stc.ir.frontends.models import from_model  # noqa: E402
from stc.passes import fold_batchnorm, quantize  # noqa: E402
from stc.passes.lower_attention import lower_attention  # noqa: E402
from stc.runtime.interpreter import execute  # noqa: E402


@pytest.fixture(scope="module")
def sdt():
    m = active_model("sdt_tiny")
    g = from_model(m)
    q, report = quantize(g, probe=pixels(8, seed=3))
    return m, g, q, report


def test_sdsa_lowering_keeps_the_float_function(sdt):
    m, g, _, _ = sdt
    lowered, names = lower_attention(g)
    assert names == ["block0.attn"]
    assert any(n.OP == "SDSACore" for n in lowered.nodes)
    x = pixels(4, seed=2)
    with torch.no_grad():
        want = m(x)
        got = execute(lowered, {"input": x}).outputs["output"]
        folded = execute(fold_batchnorm(lowered)[0], {"input": x}).outputs["output"]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(folded, want, rtol=1e-4, atol=1e-4)


def test_one_unit_for_the_membrane_stream(sdt, monkeypatch):
    from stc.lava.fixed_point import check_loihi_weight

    _, g, q, report = sdt
    stream = next(r for r in report.layers if r["name"] == "stream")
    e = -stream["exponent"]
    assert set(stream["terms"]) == {"patch_embed.stage3.conv", "patch_embed.rpe.conv",
                                    "block0.attn.proj_linear", "block0.mlp.fc2.linear"}
    assert set(stream["readers"]) == {"patch_embed.lif3", "block0.attn.shortcut_lif",
                                      "block0.mlp.fc1_lif"}
    for t in stream["terms"]:  # Loihi Dense weights, no synaptic bias
        node = q.node(t)
        check_loihi_weight(t, q.param(node, "weight").numpy())
        assert "bias" not in node.params
    for r in stream["readers"]:  # tau = 2, v_th = 1 in the stream unit 2^-e
        node = q.node(r)
        assert node.OP == "LoihiCubaLIF" and node.v_th_mant == round(2 * 2.0 ** e)
        assert node.v_decay == 2048 and node.i_decay == 4096
    assert {"token_mean", "head_lif", "head"} <= set(report.host_readout)
    forbid_integer_matmul(monkeypatch)
    x = pixels(16, seed=7)
    with torch.no_grad():
        flt = execute(g, {"input": x}).outputs["output"].argmax(-1)
        res = execute(q, {"input": x}, numerics="fixed")
    fix = res.outputs["output"].argmax(-1)
    assert (fix == flt).float().mean() >= 0.8
    assert 0 < res.firing_rates["block0.mlp.fc1_lif"] < 1


def test_sdsa_core_fixed_equals_the_float_op_and_numpy():
    from stc.ir import nodes as N
    from stc.lava.processes.sdsa import sdsa_fixed_reference
    from stc.runtime.interpreter import _sdsa_core

    gen = torch.Generator().manual_seed(0)
    q, k, v = ((torch.rand(5, 3, 6, 8, generator=gen) < p).float() for p in (0.5, 0.2, 0.2))
    n = N.SDSACore(name="c", inputs=["q", "k", "v"], shape=(6, 8), num_heads=2)
    fixed = _sdsa_core(n, [q, k, v], True, "torch")
    flt = _sdsa_core(n, [q, k, v], False, "torch")
    want = np.stack([sdsa_fixed_reference(q[:, b].numpy(), k[:, b].numpy(), v[:, b].numpy())
                     for b in range(3)], axis=1)
    assert 0 < want.sum() < want.size
    np.testing.assert_array_equal(fixed.numpy(), want)
    np.testing.assert_array_equal(flt.numpy(), want)
