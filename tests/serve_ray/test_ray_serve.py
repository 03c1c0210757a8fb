"""stc on a real local Ray cluster (this machine, loopback): two Ray Serve replicas of a real
bundle behind Ray's gRPC proxy, called with tritonclient.grpc; outputs compared with an
in-process ``stc.runtime.load_bundle`` of the same file (what the plain ``stc serve`` runs).
A replica process killed with SIGKILL is restarted by Ray while requests keep succeeding, and
shutdown leaves no Ray process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

ray = pytest.importorskip("ray", reason="Ray is in the dev set (requirements/lock.txt)")
import tritonclient.grpc as grpcclient  # noqa: E402

from stc.bundle import write_bundle  # noqa: E402
from stc.ir.frontends.torch import from_torch  # noqa: E402
from stc.nn.neurons import LIF  # noqa: E402
from stc.runtime import load_bundle  # noqa: E402
from stc.serve_ray.app import RayServeConfig, free_port, serve_repository, shutdown  # noqa: E402

pytestmark = pytest.mark.slow
D_IN, D_OUT, T = 6, 5, 4


def _bundle(path, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(D_IN, D_OUT), LIF(backend="torch")).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bundle(path, from_torch(model, (D_IN,), time_steps=T), name="tiny",
                        version="1")


def _x(batch, seed):
    return np.random.default_rng(seed).uniform(0, 2, size=(batch, D_IN)).astype(np.float32)


def _infer(client, x):
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    res = client.infer("tiny", [inp], client_timeout=30)
    return {o["name"]: res.as_numpy(o["name"]) for o in res.get_response(as_json=True)["outputs"]}


@pytest.fixture(scope="module")
def ray_app(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    bundle = _bundle(repo / "tiny" / "1" / "model.stcb")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = serve_repository(RayServeConfig(repository=str(repo), grpc_port=free_port(),
                                           replicas=2, max_delay_ms=1.0))
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the proxy answers once replicas are up
        try:
            if client.is_model_ready("tiny"):
                break
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.5)
    yield client, bundle
    client.close()
    shutdown(stop_ray=True)


def test_tritonclient_through_ray_equals_plain_runtime(ray_app):
    client, bundle = ray_app
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_model_metadata("tiny", as_json=True)
    assert [i["name"] for i in meta["inputs"]] == ["input"]
    exe = load_bundle(bundle, backend="cpu")
    try:
        for seed, batch in ((0, 1), (1, 3), (2, 8)):
            x = _x(batch, seed)
            got = _infer(client, x)
            want = exe.infer({"input": x})
            assert set(got) == set(want)
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
    finally:
        exe.close()


def test_unknown_model_is_not_found_through_ray(ray_app):
    client, _ = ray_app
    inp = grpcclient.InferInput("input", [1, D_IN], "FP32")
    inp.set_data_from_numpy(_x(1, 0))
    with pytest.raises(Exception, match="NOT_FOUND|not found|unknown"):
        client.infer("nope", [inp], client_timeout=30)


def _replica_pids(calls=24):
    """Process ids of the live replicas, asked through a deployment handle (Ray spreads the
    calls over the replicas)."""
    from ray import serve

    handle = serve.get_deployment_handle("OIPReplica", app_name="stc")
    pids = set()
    for _ in range(calls):
        try:
            pids.add(handle.pid.remote().result(timeout_s=30))
        except Exception:  # noqa: BLE001 - a replica that is dying
            pass
    return sorted(pids)


def test_killed_replica_is_restarted_and_requests_keep_succeeding(ray_app):
    client, bundle = ray_app
    pids = _replica_pids()
    assert len(pids) == 2, pids
    os.kill(pids[0], signal.SIGKILL)
    x = _x(4, 7)
    exe = load_bundle(bundle, backend="cpu")
    want = exe.infer({"input": x})
    exe.close()
    ok = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ok < 20:
        got = _infer(client, x)  # any failure here fails the test
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
        ok += 1
    assert ok == 20
    deadline = time.monotonic() + 60
    new = _replica_pids()
    while time.monotonic() < deadline and (len(new) < 2 or pids[0] in new):
        time.sleep(0.5)
        new = _replica_pids()
    assert len(new) == 2 and pids[0] not in new, new


def test_bad_configs_fail_before_anything_starts(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        RayServeConfig(repository=str(tmp_path / "nope")).validate()
    with pytest.raises(ValueError, match="replicas must be >= 1"):
        RayServeConfig(repository=str(tmp_path), replicas=0).validate()
    with pytest.raises(ValueError, match="autoscale"):
        RayServeConfig(repository=str(tmp_path), autoscale=(3, 1)).validate()
    with pytest.raises(ValueError, match="backend must be one of"):
        RayServeConfig(repository=str(tmp_path), device="tpu").validate()


def test_gpu_request_on_a_cluster_without_gpus_is_refused_and_leaves_nothing(tmp_path):
    code = (
        "import ray, sys\n"
        "from stc.serve_ray.app import RayServeConfig, serve_repository, free_port\n"
        f"cfg = RayServeConfig(repository={str(tmp_path)!r}, gpus_per_replica=1,"
        " grpc_port=free_port())\n"
        "try:\n"
        "    serve_repository(cfg)\n"
        "except RuntimeError as e:\n"
        "    print('ERR', e); print('INIT', ray.is_initialized()); sys.exit(3)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "RAY_num_gpus": "0"})
    assert r.returncode == 3, r.stdout + r.stderr
    assert "GPU(s) but the Ray cluster has 0" in r.stdout
    assert "INIT False" in r.stdout


def test_without_ray_a_clear_error_names_the_install_command():
    code = ("import sys; sys.modules['ray'] = None\n"
            "from stc.serve_ray import require_ray, RayNotInstalledError\n"
            "try:\n    require_ray()\n"
            "except RayNotInstalledError as e:\n    print(e); sys.exit(3)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "pip install 'stc[ray]'" in r.stdout, r.stdout + r.stderr


def test_stc_serve_engine_ray_bad_input_exits_2_and_names_the_problem(tmp_path):
    def serve(*args):
        return subprocess.run([sys.executable, "-m", "stc.cli.main", "serve", *args],
                              capture_output=True, text=True, timeout=120)

    r = serve("--repository", str(tmp_path / "nope"), "--engine", "ray")
    assert r.returncode == 2 and "is not a folder" in r.stderr, r.stderr
    r = serve("--repository", str(tmp_path), "--engine", "ray", "--replicas", "0")
    assert r.returncode == 2 and "replicas must be >= 1" in r.stderr, r.stderr
    r = serve("--repository", str(tmp_path), "--engine", "ray", "--autoscale", "x")
    assert r.returncode == 2 and "MIN:MAX" in r.stderr, r.stderr
    r = serve("--repository", str(tmp_path), "--engine", "spark")
    assert r.returncode == 2 and "local, ray" in r.stderr, r.stderr
