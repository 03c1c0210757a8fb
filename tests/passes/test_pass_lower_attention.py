"""Attention lowering keeps the float function; the quantised attention LIF is exact."""

import numpy as np
import pytest
import torch
from stc.kernels.cuba_fixed import cuba_lif_fixed

from stc.errors import MappingError
from stc.ir.frontends.models import from_model
from stc.models import create_model
from stc.passes import lower_attention
from stc.runtime.interpreter import execute


@pytest.mark.parametrize("kind", ["spikformer_tiny", "dsformer_tiny"])
def test_lowered_graph_computes_the_module(kind):
    torch.manual_seed(0)
    m = create_model(kind, backend="torch")
    for mod in m.modules():  # make the attention active
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.weight.data.uniform_(3, 7)
            mod.bias.data.uniform_(-0.5, 1.0)
    m.eval()
    g = from_model(m)
    low, names = lower_attention(g)
    assert names == ["block0.attn"]
    assert "SpikeAttention" not in {n.OP for n in low.nodes}
    assert {"AttentionCore", "LIF"} <= {n.OP for n in low.nodes}
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        ref = m(x)
        fused = execute(g, {"input": x}).outputs["output"]
        got = execute(low, {"input": x}, record_spikes=True)
    assert got.spike_counts["block0.attn.attn_lif"] > 0
    torch.testing.assert_close(got.outputs["output"], ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.outputs["output"], fused, rtol=0, atol=1e-5)


def test_graded_attention_is_refused_with_the_node_named():
    m = create_model("dsformer_tiny", backend="torch", spike_mode="graded").eval()
    with pytest.raises(MappingError, match=r"block0\.attn.*graded"):
        lower_attention(from_model(m))


@pytest.mark.parametrize("T", [4, 7])
def test_attention_lif_with_tie_offset_equals_float_lif(T):
    """stc.passes.quantize's attention LIF: unit 2^-4 (scale 0.125 / tau 2), v_th_mant 8,
    v_decay 2048, bias 1 at bias_exp 0. On integer O >= 0 its spikes equal the float LIF on
    O * 0.125 (H = V/2 + X/2, spike at H >= 0.5, hard reset): here checked against that
    formula directly. Without the offset, ties (H == 0.5) make them differ."""
    gen = torch.Generator().manual_seed(T)
    o = torch.randint(0, 12, (T, 4000), generator=gen)
    v = torch.zeros(4000, dtype=torch.float64)
    want = []
    for t in range(T):
        h = v + (o[t].double() * 0.125 - v) / 2.0
        s = h >= 0.5
        v = torch.where(s, torch.zeros_like(h), h)
        want.append(s)
    want = torch.stack(want).to(torch.int32)
    a = o.to(torch.int32)
    got, _, _ = cuba_lif_fixed(a, 4095, 2048, 8, bias_mant=1, bias_exp=0, backend="torch")
    assert want.sum() > 0
    np.testing.assert_array_equal(got.to(torch.int32).numpy(), want.numpy())
    plain, _, _ = cuba_lif_fixed(a, 4095, 2048, 8, bias_mant=0, bias_exp=0, backend="torch")
    assert not torch.equal(plain.to(torch.int32), want)
