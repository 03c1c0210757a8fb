"""Spikformer / DSFormer on Lava: the lava-sim executor equals the runtime's fixed mode bit for
bit (the integer values read back and the host readout's logits), through the bundle path."""

import json
import zipfile

import numpy as np
import pytest
import torch
from transformer_nets import active_model, pixels

from stc.errors import MappingError
from stc.ir.frontends.models import from_model
from stc.lava.mapping import MAPPING_MEMBER, map_graph
from stc.lava.network import build_process_graph, run_process_graph, with_tap
from stc.passes import fold_batchnorm, quantize
from stc.runtime.interpreter import execute

pytestmark = pytest.mark.slow


def _fixed(kind):
    g, _ = fold_batchnorm(from_model(active_model(kind)))
    q, report = quantize(g, probe=pixels(8, seed=3))
    return g, q, report


@pytest.mark.parametrize("kind", ["spikformer_tiny", "dsformer_tiny"])
def test_process_graph_equals_runtime_fixed(kind):
    _, q, report = _fixed(kind)
    assert report.lowered_attention == ["block0.attn"]
    assert "token_mean" in report.host_readout and "head" in report.host_readout
    pg = build_process_graph(q)
    kinds = {s.kind for s in pg.specs}
    assert {"dense", "lif", "or_pool", "add", "route", "attention"} <= kinds
    x = pixels(3)
    vals, outs = run_process_graph(pg, x.numpy())
    with torch.no_grad():
        rt = execute(with_tap(q, pg.boundary), {"input": x}, numerics="fixed").outputs
    want = rt["boundary"].transpose(0, 1).numpy()
    assert vals.shape == want.shape == (3, 4, 16, 64)
    assert 0 < want.sum() < 3 * want.size  # graded residual sums, not vacuous
    np.testing.assert_array_equal(vals, want)
    np.testing.assert_array_equal(outs["output"], rt["output"].numpy())


def test_bundle_lava_sim_equals_cpu_fixed(tmp_path):
    from stc.bundle import write_bundle
    from stc.runtime import load_bundle

    g, q, _ = _fixed("dsformer_tiny")
    mapping = map_graph(q)
    assert mapping.executable and mapping.network is None
    path = write_bundle(tmp_path / "ds.stcb", g, name="ds", fixed_graph=q, numerics="fixed",
                        extra_members=mapping.members())
    with zipfile.ZipFile(path) as z:
        doc = json.loads(z.read(MAPPING_MEMBER))
    assert doc["executable"] and doc["process_graph"]["latency"] == mapping.process_graph.latency
    assert any(s["kind"] == "attention" for s in doc["process_graph"]["specs"])
    assert doc["report"]["host_layers"]  # the attention core is placed on a host core
    x = pixels(2, seed=5).numpy()
    lava = load_bundle(path, backend="lava-sim")
    try:
        got = lava.infer({"input": x})["output"]
    finally:
        lava.close()
    want = load_bundle(path, backend="cpu", numerics="fixed").infer({"input": x})["output"]
    assert got.shape == want.shape == (2, 10)
    np.testing.assert_array_equal(got, want)


def test_float_graph_is_refused_by_name():
    g, _, _ = _fixed("spikformer_tiny")
    with pytest.raises(MappingError, match=r"block0\.attn"):
        build_process_graph(g)


def test_float_input_through_the_process_graph_equals_cpu_fixed():
    """The float model's input (digits in [0, 1], the digits contract): the fixed graph's
    input quantisation is applied by run_process_graph as by the runtime's Executable."""
    from stc.runtime import Executable
    from stc.runtime.contract import attach_contract
    from stc.train.contract import digits_input_contract

    g, _ = fold_batchnorm(from_model(active_model("spikformer_tiny")))
    attach_contract(g, digits_input_contract())
    x = pixels(8, seed=3) / 16  # multiples of 1/16 in [0, 1]
    q, report = quantize(g, calibration=x, search=False)
    assert report.input_scale == 16.0
    pg = build_process_graph(q)
    assert pg.input_scale == 16.0
    vals, outs = run_process_graph(pg, x[:2].numpy())
    want = Executable(q, numerics="fixed").infer({"input": x[:2].numpy()})["output"]
    np.testing.assert_array_equal(outs["output"], want)
    with torch.no_grad():  # independent: the interpreter fed round(x * 16) by hand
        rt = execute(with_tap(q, pg.boundary), {"input": (x[:2] * 16).round()},
                     numerics="fixed").outputs
    np.testing.assert_array_equal(vals, rt["boundary"].transpose(0, 1).numpy())
    assert 0 < vals.sum()
