"""The prepared GPU check (benchmarks/gpu_check): its dry run must pass on CPU (CI proves the
script runs every step), and the wheel installer must install only what an image lacks."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["pytest -m gpu", "LIF", "attention", "spikformer_8_384 e2e", "fixed-point throughput",
         "energy"]


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_check/run.py"), "--dry-run",
                        "--out", str(tmp_path), "--budget-s", "170"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_check_dryrun_cpu.json").read_text())
    assert list(res["steps"]) == STEPS
    bad = {k: v for k, v in res["steps"].items() if v["status"] != "ok"}
    assert not bad, bad
    env = res["environment"]
    assert env["dry_run"] is True and env["torch"] and "device" in env and env["command"]
    lif = res["steps"]["LIF"]["rows"]
    assert {r["method"] for r in lif} >= {"stc triton", "torch reference",
                                          "torch.compile(reference)"}
    assert all(r["ms"] is not None for r in lif if r["method"] != "spikingjelly LIFNode")
    e2e = res["steps"]["spikformer_8_384 e2e"]["rows"]
    assert {(r["precision"], r["impl"]) for r in e2e if r.get("ms")} >= {
        ("fp32", "stc model"), ("bf16", "stc model"), ("fp32", "pytorch+spikingjelly")}
    # fp32: stc (torch backend on CPU) and the SpikingJelly formulation predict alike
    assert all(r["predictions_equal"].split("/")[0] == r["predictions_equal"].split("/")[1]
               for r in e2e if r["precision"] == "fp32" and "predictions_equal" in r)
    md = (tmp_path / "gpu_check_dryrun_cpu.md").read_text()
    assert "DRY RUN" in md and "## LIF: ok" in md


def test_install_wheels_installs_only_what_is_missing(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "install_wheels", ROOT / "benchmarks/gpu_check/install_wheels.py")
    iw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(iw)
    names = ["torch-2.11.0-cp312-cp312-linux_x86_64.whl",
             "grpcio-1.85.1-cp312-cp312-manylinux2014_x86_64.whl",
             "protobuf-7.36.2-cp310-abi3-manylinux2014_x86_64.whl",
             "grpcio_health_checking-1.85.1-py3-none-any.whl",
             "nir-1.0.8-py3-none-any.whl"]
    have = {"torch": "2.11.0", "grpcio": "1.70.0", "protobuf": "7.36.2", "nir": "1.0.8"}

    def version(name):
        if name not in have:
            raise iw.md.PackageNotFoundError(name)
        return have[name]

    with mock.patch.object(iw.md, "version", version):
        todo = iw.plan([tmp_path / n for n in names])
    assert [(w.name.split("-")[0], why) for w, why in todo] == [
        ("grpcio", "grpcio 1.70.0 < 1.85.1"),
        ("grpcio_health_checking", "grpcio-health-checking absent")]
