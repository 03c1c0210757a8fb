"""Input contracts (stc.runtime.contract) and Loihi-representable weights (Graph.verify):
range / dtype / preprocessing checks with clear errors, old bundles without a contract, the
fixed graph's input quantisation, and the weight rule checked against Lava's own Dense weight
functions (lava.utils.weightutils) and on the issue's repro in every fixed entry point."""

import numpy as np
import pytest
import torch
from torch import nn

from stc.bundle import read_bundle, write_bundle
from stc.errors import BundleError, MappingError
from stc.ir import GraphError
from stc.ir.frontends import from_torch
from stc.ir.graph import loihi_weight_problem
from stc.nn import LIF
from stc.passes import quantize
from stc.runtime import Executable, load_bundle
from stc.runtime.contract import apply_contract, attach_contract, make_contract
from stc.train.contract import digits_input_contract


def _mlp_graph(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(6, 8), LIF(backend="torch"), nn.Linear(8, 3),
                      LIF(backend="torch")).eval()
    with torch.no_grad():  # active: every layer fires on inputs in [0, 1]
        m[0].weight.mul_(6.0)
        m[0].bias.add_(0.5)
        m[2].weight.mul_(6.0)
        m[2].bias.add_(0.5)
    return from_torch(m, (6,), time_steps=4, readout="spikes")


def _contract(**kw):
    return make_contract((6,), lo=0.0, hi=1.0, step=kw.pop("step", 1 / 16), scale=1 / 16,
                         raw_range=[0, 16], description="levels / 16", **kw)


def test_reject_preprocess_and_integer_declared_input():
    c = _contract()
    x = np.full((2, 6), 0.5, np.float32)
    assert apply_contract("input", x, c) is x
    with pytest.raises(ValueError, match=r"\[16, 16\].*expects values in \[0, 1\]"):
        apply_contract("input", x * 32, c)
    got = apply_contract("input", np.full((2, 6), 8.0), c, "preprocess")
    np.testing.assert_allclose(got, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        apply_contract("input", np.full((1, 6), np.nan, np.float32), c)
    with pytest.raises(ValueError, match="samples must have shape \\[6\\]"):
        apply_contract("input", np.zeros((2, 5), np.float32), c)
    ci = make_contract((6,), lo=0, hi=1, dtype="uint8", encoding="spikes")
    with pytest.raises(ValueError, match="declared integer .*uint8.*floating-point"):
        apply_contract("input", np.zeros((1, 6), np.float32), ci)
    assert apply_contract("input", np.ones((1, 6), np.uint8), ci).dtype == np.uint8
    with pytest.raises(ValueError, match="input_policy"):
        apply_contract("input", x, c, "clip")


def test_fixed_graph_takes_float_input_and_equals_integer_path():
    g = attach_contract(_mlp_graph(), _contract())
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 17, (16, 6), generator=gen).double() / 16  # multiples of 1/16
    q, rep = quantize(g, calibration=x, search=False)
    assert rep.input_scale == 16.0 and q.metadata["input_quant"] == {"input": {"scale": 16.0}}
    y_float_in = Executable(q, numerics="fixed").infer({"input": x.numpy()})["output"]
    # independent route: the same fixed graph without the boundary scale, fed round(x * 16)
    bare = q.copy()
    bare.metadata = {k: v for k, v in bare.metadata.items()
                     if k not in ("input_quant", "input_contract")}
    y_int_in = Executable(bare, numerics="fixed").infer(
        {"input": (x * 16).round().numpy()})["output"]
    np.testing.assert_array_equal(y_float_in, y_int_in)
    assert 0 < y_float_in.sum() < y_float_in.size
    # the first layer folded 1/16: its integer weights times 2^exponent approximate W/(16 tau)
    w = g.tensors["linear_0.weight"].double() / 2.0 / 16
    layer = next(la for la in rep.layers if la["name"] == "linear_0")
    deq = q.tensors["linear_0.weight"].double() * 2.0 ** layer["exponent"]
    assert float((deq - w).norm() / w.norm()) < 0.02


def test_bundle_records_contract_and_old_bundles_still_load(tmp_path):
    g = attach_contract(_mlp_graph(), _contract())
    q, _ = quantize(g, search=False)
    p = write_bundle(tmp_path / "c.stcb", g, name="c", fixed_graph=q)
    b = read_bundle(p)
    assert b.manifest["graph"]["metadata"]["input_contract"]["input"]["range"] == [0.0, 1.0]
    exe = load_bundle(p, numerics="fixed")
    with pytest.raises(ValueError, match="expects values in \\[0, 1\\]"):
        exe.infer({"input": np.full((1, 6), 3.0, np.float32)})
    pre = load_bundle(p, numerics="float", input_policy="preprocess")
    assert pre.infer({"input": np.full((1, 6), 16.0)})["output"].shape == (1, 4, 3)
    # a bundle written without a contract (as before contracts): inputs are not checked
    old = write_bundle(tmp_path / "old.stcb", _mlp_graph(), name="old")
    y = load_bundle(old).infer({"input": np.full((1, 6), 3.0, np.float32)})["output"]
    assert y.shape == (1, 4, 3)


def test_manifest_rejects_a_malformed_contract(tmp_path):
    g = _mlp_graph()
    g.metadata["input_contract"] = {"input": {"dtype": "float32", "shape": [6]}}
    with pytest.raises(BundleError, match="input contract of 'input' must have exactly"):
        write_bundle(tmp_path / "bad.stcb", g, name="bad")
    assert list(tmp_path.iterdir()) == []  # nothing written on failure


def test_negative_range_has_no_loihi_input():
    c = make_contract((6,), lo=-1.0, hi=1.0)
    with pytest.raises(MappingError, match="non-negative"):
        quantize(attach_contract(_mlp_graph(), c))


def _lava_keeps(w: np.ndarray) -> bool:
    """Lava 0.10's own Dense weight handling (lava/proc/dense/models.py, fixed_pt, 8 bits)."""
    from stc.lava.compat import import_lava

    import_lava()  # the Python 3.11 fix, before lava's own modules
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    mode = determine_sign_mode(w)
    got = truncate_weights(clip_weights(w, mode, num_bits=8), mode, 8)
    return bool(np.array_equal(got, w))


def test_weight_rule_matches_lavas_dense_weight_functions():
    rng = np.random.default_rng(0)
    cases = [np.array([[3, -5, 7]]), np.array([[3, 5, 7]]), np.array([[-3, -5, -255]]),
             np.array([[2, -4, 254]]), np.array([[2, -4, 256]]), np.array([[255, 0]]),
             np.array([[256, 0]]), np.array([[-256, 2]]), np.array([[-258, 2]]),
             np.zeros((2, 2), int)]
    cases += [rng.integers(-300, 300, (3, 4)) for _ in range(40)]
    cases += [rng.integers(-128, 128, (3, 4)) * 2 for _ in range(20)]
    cases += [rng.integers(0, 300, (3, 4)) for _ in range(20)]
    for w in cases:
        ours = loihi_weight_problem(torch.as_tensor(w, dtype=torch.int32)) is None
        assert ours == _lava_keeps(w.astype(np.int32)), w
    assert loihi_weight_problem(torch.tensor([[0.3, -0.5]])) is None  # float: host layer


def _repro_graph():
    """The issue's repro: Input(3) -> Linear [[3, -5, 7]] -> LoihiCubaLIF(4096, 4096, 3)."""
    from stc.ir import Graph
    from stc.ir.nodes import Input, Linear, LoihiCubaLIF, Output, Repeat

    g = Graph()
    g.add(Input(name="input", shape=(3,)))
    g.add(Repeat(name="rep", inputs=["input"], shape=(3,), time_steps=4))
    g.add(Linear(name="fc", inputs=["rep"], shape=(1,), params={"weight": "fc.weight"},
                 in_features=3, out_features=1))
    g.add(LoihiCubaLIF(name="lif", inputs=["fc"], shape=(1,), i_decay=4096, v_decay=4096,
                       v_th_mant=3))
    g.add(Output(name="out", inputs=["lif"], shape=(1,)))
    g.tensors["fc.weight"] = torch.tensor([[3, -5, 7]], dtype=torch.int32)
    return g


def test_issue_repro_is_rejected_in_every_fixed_entry_point():
    from stc.lava.network import build_process_graph

    with pytest.raises(GraphError, match=r"'fc' \(Linear\).*\[-5, 3, 7\].*even"):
        _repro_graph().verify()
    with pytest.raises(GraphError, match="'fc'"):
        Executable(_repro_graph(), numerics="fixed")
    with pytest.raises(MappingError, match="'fc'.*Lava's Dense would change"):
        build_process_graph(_repro_graph())
    # the even weights the rule asks for are accepted and verify
    g = _repro_graph()
    g.tensors["fc.weight"] = torch.tensor([[2, -6, 6]], dtype=torch.int32)
    g.verify()


def test_digits_contract_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="does not match input"):
        attach_contract(_mlp_graph(), digits_input_contract())
