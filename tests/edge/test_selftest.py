"""The bundle's selftest section: written by the compiler's save (what `stc bundle` calls),
strictly validated, and judged bit-exact for fixed and within the tolerance for float."""

import copy

import edge_nets
import numpy as np
import pytest

from stc.bundle import read_bundle
from stc.bundle.selftest import check_section, decode_tensor, encode_tensor, run
from stc.compiler import SpikeCompiler
from stc.errors import BundleError
from stc.runtime import load_bundle


def test_compiler_save_writes_a_selftest_the_runtime_passes(tmp_path):
    compiled = SpikeCompiler("cpu", 3, edge_nets.T).compile(edge_nets.mlp(), (edge_nets.D_IN,))
    path = compiled.save(tmp_path / "m.stcb", name="mlp")
    section = read_bundle(path).manifest["selftest"]
    assert [c["numerics"] for c in section["cases"]] == ["float", "fixed"]
    for numerics in ("float", "fixed"):
        exe = load_bundle(path, numerics=numerics)
        (case,) = [c for c in section["cases"] if c["numerics"] == numerics]
        feeds = {k: decode_tensor(v) for k, v in case["inputs"].items()}
        assert np.array_equal(feeds["input"], feeds["input"].round())  # valid for fixed
        want = exe.infer(feeds)["output"]
        np.testing.assert_array_equal(decode_tensor(case["outputs"]["output"]), want)
        res = run(exe, section, numerics)
        assert res.passed and res.exact == (numerics == "fixed") and res.max_abs_error == 0


def _with_output_shift(section, numerics, delta):
    s = copy.deepcopy(section)
    for c in s["cases"]:
        if c["numerics"] == numerics:
            t = c["outputs"]["output"]
            c["outputs"]["output"] = encode_tensor(decode_tensor(t) + delta, t["datatype"])
    return s


def test_rules_exact_for_fixed_tolerance_for_float(tmp_path):
    path = edge_nets.write(tmp_path / "m.stcb", version="1")
    section = read_bundle(path).manifest["selftest"]
    f, q = load_bundle(path, numerics="float"), load_bundle(path, numerics="fixed")
    tol = section["tolerance"]["atol"]
    assert run(f, _with_output_shift(section, "float", tol / 2), "float").passed
    res = run(f, _with_output_shift(section, "float", 10 * tol), "float")
    assert not res.passed and "differs from the reference" in res.detail
    res = run(q, _with_output_shift(section, "fixed", np.float32(1e-6)), "fixed")
    assert not res.passed and "bit-exact" in res.detail
    assert not run(f, None, "float").passed  # no section: a node cannot vouch


def test_malformed_sections_are_rejected(tmp_path):
    path = edge_nets.write(tmp_path / "m.stcb", version="1")
    good = read_bundle(path).manifest["selftest"]
    check_section(good)
    bad = copy.deepcopy(good)
    bad["cases"][0]["inputs"]["input"]["data"] = "!!"
    with pytest.raises(BundleError, match="not base64"):
        check_section(bad)
    bad = copy.deepcopy(good)
    bad["cases"][0]["inputs"]["input"]["shape"] = [99]
    with pytest.raises(BundleError, match="do not fit shape"):
        check_section(bad)
    with pytest.raises(BundleError, match="exactly reference, tolerance, cases"):
        check_section({**good, "extra": 1})
    with pytest.raises(BundleError, match="atol"):
        check_section({**good, "tolerance": {"atol": -1, "rtol": 0}})
