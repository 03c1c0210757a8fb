"""stc.bench.plots: error-bar arithmetic, the machine line, the latency histogram file and the
recorded-results redraw; timing keeps every sample (max = slowest call)."""

import pytest

from stc.bench import plots
from stc.bench.timing import time_calls


def test_timing_keeps_samples_and_max():
    t = [0.0]
    durations = iter([9.0, 1.0, 3.0, 2.0, 5.0, 4.0])

    def fn():
        t[0] += next(durations)

    r = time_calls(fn, batch_size=4, warmup=1, repeats=5, clock=lambda: t[0])
    assert r.samples_s == (1.0, 2.0, 3.0, 4.0, 5.0) and r.max_s == 5.0
    d = r.to_dict()
    assert d["max_ms"] == 5000.0 and d["samples_ms"] == [1000.0, 2000.0, 3000.0, 4000.0,
                                                          5000.0]


def test_throughput_error_bars_and_machine_line():
    row = {"batch": 4, "stc": {"median_ms": 20.0, "min_ms": 10.0, "max_ms": 40.0,
                               "p90_ms": 30.0}}
    lo, med, hi = plots._thr(row, "stc")
    assert (lo, med, hi) == pytest.approx((100.0, 200.0, 400.0))  # 4 samples / s
    del row["stc"]["max_ms"]
    assert plots._thr(row, "stc")[0] == pytest.approx(4e3 / 30.0)  # p90 stands in
    env = {"device": "CPU: x86_64", "torch_threads": 1, "cpu_count": 2,
           "load_average_1min_at_start": 3.5}
    assert plots.machine_line(env) == ("CPU: x86_64, 1 torch thread, 2 CPUs, load 3.5 at "
                                       "start (shared machine)")


def test_figures_are_written(tmp_path):
    row = {"batch": 1, "speedup": 1.5,
           "stc": {"median_ms": 2.0, "min_ms": 1.0, "max_ms": 3.0, "samples_ms": [1, 2, 3]},
           "baseline": {"median_ms": 3.0, "min_ms": 2.0, "max_ms": 4.0,
                        "samples_ms": [2, 3, 4]}}
    result = {"environment": {"device": "CPU"}, "config": {"img_size": 8, "T": 2},
              "models": {"m": {"rows": [row, dict(row, batch=2)]}}}
    for p in (plots.throughput_figure(result, tmp_path / "t.png"),
              plots.latency_histogram(result, tmp_path / "l.png"),
              plots.energy_figure([{"model": "m", "formula_mj": 0.1, "loihi1_mj": 2.0,
                                    "loihi2_low_mj": 0.01, "loihi2_high_mj": 0.6,
                                    "gpu_stc_total_mj": None}], tmp_path / "e.png",
                                  title="t"),
              plots.training_curves([{"epoch": 1, "loss": 1.0, "val_accuracy": 0.5,
                                      "best": True}], tmp_path / "c.png", title="t",
                                    test_accuracy=0.4),
              plots.firing_rates_figure({"a": 0.1, "b": 0.2}, tmp_path / "f.png", title="t")):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    no_samples = {**result, "models": {"m": {"rows": [{**row, "stc": {"median_ms": 1}}]}}}
    assert plots.latency_histogram(no_samples, tmp_path / "x.png") is None
