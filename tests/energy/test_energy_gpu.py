"""GPU measurement protocol arithmetic with a fake counter clock, and its error paths."""

import sys

import pytest
import torch

from stc.energy import CounterMeter, GpuEnergyUnavailable, measure_gpu_energy, nvml_meter
from stc.energy import gpu as gpu_mod


class FakeGpu:
    """A GPU whose energy counter (mJ) = P_idle * t + E_inf * inferences; each batch takes dt."""

    def __init__(self, p_idle_w=50.0, e_inf_mj=3.0, dt_s=0.5, batch=8):
        self.t = 0.0
        self.e_mj = 0.0
        self.p_idle, self.e_inf, self.dt, self.batch = p_idle_w, e_inf_mj, dt_s, batch
        self.calls = 0

    def clock(self):
        return self.t

    def counter(self):
        return self.e_mj

    def sleep(self, s):
        self.t += s
        self.e_mj += self.p_idle * s * 1e3

    def run_batch(self):
        self.calls += 1
        self.t += self.dt
        self.e_mj += self.p_idle * self.dt * 1e3 + self.e_inf * self.batch


def test_protocol_arithmetic_against_formula():
    g = FakeGpu()
    meter = CounterMeter(g.counter, g.clock, source="fake")
    r = measure_gpu_energy(g.run_batch, batch_size=g.batch, meter=meter, sync=lambda: None,
                           warmup=2, min_seconds=2.0, repeats=3, idle_s=1.0, sleep=g.sleep,
                           clock=g.clock)
    calls = 4  # 2.0 s / 0.5 s per batch (exact in binary floating point)
    assert r.inferences == [calls * g.batch] * 3
    assert r.seconds == pytest.approx([calls * g.dt] * 3)
    assert r.idle_power_w == pytest.approx(g.p_idle)
    # total per inference = E_inf + P_idle * dt / batch (mJ); dynamic = E_inf
    assert r.total_mj == pytest.approx(g.e_inf + g.p_idle * g.dt * 1e3 / g.batch)
    assert r.dynamic_mj == pytest.approx(g.e_inf)
    assert r.total_mj_std == pytest.approx(0.0, abs=1e-9)
    assert g.calls == 2 + 3 * calls
    assert r.kind == "measurement" and r.source == "fake"


def test_counter_meter_rejects_backwards_counter():
    vals = iter([10.0, 5.0])
    m = CounterMeter(lambda: next(vals), clock=iter([0.0, 1.0]).__next__)
    m.begin()
    with pytest.raises(RuntimeError, match="backwards"):
        m.end()


def test_missing_package_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with pytest.raises(GpuEnergyUnavailable, match="nvidia-ml-py"):
        nvml_meter()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error path")
def test_no_gpu_error():
    with pytest.raises(GpuEnergyUnavailable, match="CUDA GPU"):
        measure_gpu_energy(lambda: None, batch_size=1)


def test_bad_arguments():
    g = FakeGpu()
    meter = CounterMeter(g.counter, g.clock)
    with pytest.raises(ValueError, match="batch_size"):
        measure_gpu_energy(g.run_batch, batch_size=0, meter=meter, sync=lambda: None)
    with pytest.raises(TypeError, match="fn"):
        measure_gpu_energy(None, batch_size=1, meter=meter, sync=lambda: None)
    with pytest.raises(ValueError, match="min_seconds"):
        measure_gpu_energy(g.run_batch, batch_size=1, meter=meter, sync=lambda: None,
                           min_seconds=-1)
    assert gpu_mod.NVML_SOURCE.startswith("NVML nvmlDeviceGetTotalEnergyConsumption")


@pytest.mark.gpu
def test_real_gpu_measurement_is_positive():
    pytest.importorskip("pynvml")
    x = torch.randn(512, 512, device="cuda")
    r = measure_gpu_energy(lambda: x @ x, batch_size=1, min_seconds=1.0, repeats=2, idle_s=0.5)
    assert r.total_mj > 0 and r.idle_power_w > 0


def test_zeus_meter_converts_joules(monkeypatch):
    import types

    class FakeMonitor:  # the ZeusMonitor interface: begin_window / end_window -> Measurement
        def __init__(self, gpu_indices):
            self.gpu_indices = gpu_indices

        def begin_window(self, key):
            self.key = key

        def end_window(self, key):
            assert key == self.key
            return types.SimpleNamespace(time=2.5, gpu_energy={self.gpu_indices[0]: 1.25})

    zeus = types.ModuleType("zeus")
    zeus.monitor = types.ModuleType("zeus.monitor")
    zeus.monitor.ZeusMonitor = FakeMonitor
    monkeypatch.setitem(sys.modules, "zeus", zeus)
    monkeypatch.setitem(sys.modules, "zeus.monitor", zeus.monitor)
    m = gpu_mod.ZeusMeter(device_index=1)
    m.begin()
    assert m.end() == (2.5, 1250.0)  # 1.25 J -> 1250 mJ
    assert "Zeus" in m.source


def test_zeus_missing_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "zeus", None)
    monkeypatch.setitem(sys.modules, "zeus.monitor", None)
    with pytest.raises(GpuEnergyUnavailable, match="zeus"):
        gpu_mod.ZeusMeter()
