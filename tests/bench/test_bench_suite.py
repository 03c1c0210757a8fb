"""run_suite on tiny presets (CPU) and the Markdown/PNG report."""

import json

import pytest
import torch

from stc.bench import BenchConfig, run_suite, write_report
from stc.bench.suite import calibrate_batchnorm
from stc.models import create_model, stats


@pytest.fixture(scope="module")
def result():
    cfg = BenchConfig(models=("spikformer_tiny", "dsformer_tiny"), batch_sizes=(1, 3),
                      img_size=8, device="cpu", warmup=0, repeats=2, seed=1, threads=1,
                      overrides={"backend": "torch"})  # Triton-interpreted LIF is covered by
    # tests/kernels; here the harness is under test
    return run_suite(cfg, log=lambda _msg: None)


def test_suite_rows_agree_and_are_consistent(result):
    assert set(result["models"]) == {"spikformer_tiny", "dsformer_tiny"}
    for m in result["models"].values():
        assert m["stc_impl"].startswith("stc runtime"), m["missing"]
        assert m["agree"] is True
        assert [r["batch"] for r in m["rows"]] == [1, 3]
        for r in m["rows"]:
            assert r["max_abs_diff"] < 1e-5
            ratio = r["baseline"]["median_ms"] / r["stc"]["median_ms"]
            assert r["speedup"] == pytest.approx(ratio)
            assert r["stc"]["throughput_per_s"] == pytest.approx(
                r["batch"] / (r["stc"]["median_ms"] / 1e3))
    assert result["environment"]["device_type"] == "cpu"
    assert any("no CUDA GPU" in w for w in result["missing"])


def test_suite_formula_energy_matches_hand_sum(result):
    # independent recomputation: same seed/model/input, calibration, stats, formula by hand
    torch.manual_seed(1)
    model = create_model("spikformer_tiny", img_size=8, T=4, backend="torch")
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    calibrate_batchnorm(model, x[:3])  # the suite calibrates on min(8, max batch) images
    recs = stats.collect(model, x[:3])
    mac = sum(r.flops * r.T for r in recs if r.is_encoding_layer)
    ac = sum(r.in_firing_rate * r.T * r.flops for r in recs
             if r.kind != "neuron" and not r.is_encoding_layer)
    e = result["models"]["spikformer_tiny"]["energy"]
    assert e["formula"]["total_pj"] == pytest.approx(4.6 * mac + 0.9 * ac, rel=1e-6)
    assert e["mean_in_firing_rate"] > 0  # calibrated BN: neurons fire
    assert e["loihi1"]["kind"] == "estimate" and e["loihi2"]["low_mj"] < e["loihi2"]["total_mj"]
    assert e["gpu_stc"] is None


def test_report_files(result, tmp_path):
    paths = write_report(result, tmp_path, command="stc bench --small", stem="t")
    md = paths["md"].read_text()
    for text in ("CPU figures", "MEASURED", "ESTIMATE", "BOUND", "Davies", "Horowitz",
                 "stc bench --small", "Missing figures", "| spikformer_tiny | 3 |"):
        assert text in md, text
    for key in ("throughput_png", "energy_png"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text())
    assert data["command"] == "stc bench --small"


def test_bad_config():
    with pytest.raises(ValueError, match="device"):
        run_suite(BenchConfig(models=("sdt_tiny",), batch_sizes=(1,), device="tpu"))
    with pytest.raises(ValueError, match="batch_sizes"):
        run_suite(BenchConfig(models=("sdt_tiny",), batch_sizes=(0,), device="cpu"))


@pytest.mark.gpu
def test_suite_on_gpu_agrees_with_baseline():
    cfg = BenchConfig(models=("sdt_tiny",), batch_sizes=(1, 4), img_size=8, device="cuda",
                      warmup=1, repeats=2, energy_seconds=1.0, energy_repeats=1)
    r = run_suite(cfg, log=lambda _msg: None)
    m = r["models"]["sdt_tiny"]
    assert m["agree"] and r["environment"]["device_type"] == "cuda"
    assert m["stc_impl"].startswith("stc runtime")
