"""Toy-size runs of the GPU benchmark entry points (what ``make gpu-check DRY_RUN=1`` calls):
every path runs on CPU, the fused kernels interpreted, and their outputs are checked against
the PyTorch formulations inside the benchmarks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(rel: str):
    spec = importlib.util.spec_from_file_location(Path(rel).stem, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_attention_benchmark_toy_run_is_exact():
    bench = load("benchmarks/attention/bench_attention.py")
    res = bench.run("cpu", dtype="fp16", toy=True, backward=False)
    fused = [r for r in res["rows"] if "fused" in r["op"]]
    assert len(fused) == 4 and all(r["exact"] is True for r in fused), fused
    assert all(r["ms"] is not None for r in res["rows"])
    assert "| ssa fused-triton |" in bench.markdown(res)
    with pytest.raises(ValueError, match="dtype"):
        bench.run("cpu", dtype="int8", toy=True)


def test_lif_gpu_benchmark_toy_run():
    bench = load("benchmarks/lif/gpu_lif.py")
    res = bench.run("cpu", dtypes=("fp16",), ts=(4,), toy=True)
    by = {r["method"]: r for r in res["rows"]}
    assert by["stc triton fwd"]["flip_rate"] == 0.0
    assert by["stc triton fwd+bwd"]["ms"] is not None and by["device copy"]["GBps"] > 0
    assert "| fp16 | 4 |" in bench.markdown(res)
