"""AOT compile check: every Triton kernel compiles for sm_90a and sm_80 on this CPU machine
without register spills, and the LIF forward reads with 128-bit (v4) loads.

The compile runs ``benchmarks/aot/compile_all.py --quick`` (one representative config per
kernel, both targets) in a subprocess without TRITON_INTERPRET: compiling needs real
JITFunctions, while this pytest process imports the kernels interpreted. The full table of
every config is ``benchmarks/results/aot_sm90a_sm80.md`` (same script, without --quick).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "aot" / "compile_all.py"


def _load_script():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import compile_all
    finally:
        sys.path.pop(0)
    return compile_all


def kernel_entry_points() -> set[str]:
    """Names of every @triton.jit function in stc.kernels whose first argument is a pointer
    (``*_ptr``): the launched kernels, as opposed to jit helpers."""
    names = set()
    for path in (ROOT / "kernels").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef) or not node.args.args:
                continue
            jit = any("jit" in ast.unparse(d) for d in node.decorator_list)
            if jit and node.args.args[0].arg.endswith("_ptr"):
                names.add(node.name)
    return names


@pytest.mark.slow
def test_every_kernel_compiles_for_sm90a_and_sm80_without_spills(tmp_path):
    out = tmp_path / "aot.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    res = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out),
                          "--md", "-"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert out.exists(), f"compile script failed:\n{res.stdout}\n{res.stderr[-3000:]}"
    data = json.loads(out.read_text())
    records = data["records"]
    compiled = {r["function"] for r in records}
    missing = kernel_entry_points() - compiled
    assert not missing, f"kernels not covered by the AOT check: {sorted(missing)}"
    for fn in compiled:
        assert {r["arch"] for r in records if r["function"] == fn} == {"sm_90a", "sm_80"}
    assert all(r["registers"] > 0 for r in records), "ptxas output not parsed"
    spills = [f"{r['kernel']} {r['arch']}: {r['spill_stores']}/{r['spill_loads']} B"
              for r in records if r["spill_stores"] or r["spill_loads"]]
    assert not spills, f"register spills: {spills}"
    lif_fwd = [r for r in records if r["function"] == "_lif_fwd_kernel"]
    assert lif_fwd and all(r["widest_ld_bits"] >= 128 for r in lif_fwd), lif_fwd
    assert data["failures"] == [] and res.returncode == 0, res.stderr[-3000:]


def test_check_flags_spills_and_narrow_lif_loads():
    ca = _load_script()
    good = {"kernel": "lif_fwd", "arch": "sm_90a", "spill_stores": 0, "spill_loads": 0,
            "need_v4": True, "widest_ld_bits": 128}
    assert ca.failures([good]) == []
    assert "spills" in ca.failures([{**good, "spill_stores": 8, "spill_loads": 8}])[0]
    assert "128" in ca.failures([{**good, "widest_ld_bits": 32}])[0]


def test_ptx_access_width_parser():
    ca = _load_script()
    ptx = ("ld.global.v4.b32 { %r1, %r2, %r3, %r4 }, [ %rd1 + 0 ];\n"
           "ld.global.b16 %rs1, [ %rd2 + 0 ];\nst.global.v2.b32 [ %rd3 + 0 ], { %r5, %r6 };\n")
    assert ca.widest_access(ptx) == {"ld": 128, "st": 64}
    assert ca.widest_access("ld.global.b32 %r1, [%rd1];\n"
                            "cp.async.cg.shared.global [ %r1 + 0 ], [ %rd1 + 0 ], 0x10, %r2;"
                            )["ld"] == 128
