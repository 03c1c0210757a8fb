"""SDT (membrane shortcut) on Lava: the lava-sim process graph equals the runtime's fixed mode
bit for bit (the membrane stream read back and the host readout's logits), directly and
through the bundle path. The model is the digits preset with random, active weights."""

import numpy as np
import pytest
import torch
from transformer_nets import active_model, pixels

from stc.ir.frontends.models import from_model
from stc.lava.network import build_process_graph, run_process_graph, with_tap
from stc.passes import fold_batchnorm, quantize
from stc.runtime.interpreter import execute

pytestmark = pytest.mark.slow


def _fixed():
    g, _ = fold_batchnorm(from_model(active_model("sdt_tiny")))
    q, _ = quantize(g, probe=pixels(8, seed=3))
    return g, q


def test_sdt_process_graph_equals_runtime_fixed():
    _, q = _fixed()
    pg = build_process_graph(q)
    assert {"dense", "lif", "max_pool", "add", "route", "sdsa"} <= {s.kind for s in pg.specs}
    x = pixels(2)
    vals, outs = run_process_graph(pg, x.numpy())
    with torch.no_grad():
        rt = execute(with_tap(q, pg.boundary), {"input": x}, numerics="fixed").outputs
    want = rt["boundary"].transpose(0, 1).numpy()
    assert vals.shape == want.shape == (2, 4, 16, 64)
    assert want.min() < 0 < want.max() and len(np.unique(want)) > 100  # a graded stream
    np.testing.assert_array_equal(vals, want)
    np.testing.assert_array_equal(outs["output"], rt["output"].numpy())


def test_sdt_bundle_lava_sim_equals_cpu_fixed(tmp_path):
    from stc.bundle import write_bundle
    from stc.lava.mapping import map_graph
    from stc.runtime import load_bundle

    g, q = _fixed()
    mapping = map_graph(q)
    assert mapping.executable
    path = write_bundle(tmp_path / "sdt.stcb", g, name="sdt", fixed_graph=q, numerics="fixed",
                        extra_members=mapping.members())
    x = pixels(2, seed=5).numpy()
    lava = load_bundle(path, backend="lava-sim")
    try:
        got = lava.infer({"input": x})["output"]
    finally:
        lava.close()
    want = load_bundle(path, backend="cpu", numerics="fixed").infer({"input": x})["output"]
    assert got.shape == want.shape == (2, 10)
    np.testing.assert_array_equal(got, want)
