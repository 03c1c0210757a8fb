"""kill -9 of a real agent at each phase of an activation, then a restart on the same store:
exactly one complete version is active (the old one before the A/B switch, the new one after
it), it serves the right outputs, and nothing of the interrupted push is left behind."""

import json

import edge_nets
import grpc
import numpy as np
import pytest
from stc.edge.client import EdgeClient

from stc.client import Client
from stc.runtime import Executable

pytestmark = pytest.mark.slow


def test_kill9_at_every_activation_phase(tmp_path, agents):
    crash = tmp_path / "crash-at"
    crash.write_text("")
    env = {"STC_EDGE_CRASH_AT": f"@{crash}"}
    store = tmp_path / "store"
    x = np.random.default_rng(0).integers(0, 4, (2, edge_nets.D_IN)).astype(np.float32)
    want = {}
    (proc,) = agents([store], env=env)
    b = edge_nets.write(tmp_path / "v1.stcb", version="1", seed=0)
    with EdgeClient(proc.address) as c:
        c.deploy(b)
    active = "1"
    for v, phase in enumerate(("staged", "placed", "selftested", "switched"), start=2):
        b = edge_nets.write(tmp_path / f"v{v}.stcb", version=str(v), seed=v)
        crash.write_text(phase)
        with EdgeClient(proc.address) as c, pytest.raises(grpc.RpcError) as err:
            c.deploy(b)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the process died
        proc.proc.wait(10)
        assert proc.proc.returncode == -9
        crash.write_text("")
        (proc,) = agents([store], env=env)
        if phase == "switched":
            active = str(v)
        state = json.loads((store / "state.json").read_text())["models"]["mlp"]
        assert state["active"]["version"] == active
        folders = sorted(p.name for p in (store / "models" / "mlp").iterdir())
        assert [f.split("-")[0] for f in folders] == sorted(
            {active, (state["previous"] or {}).get("version", active)})
        assert list((store / "staging").iterdir()) == []
        if active not in want:
            g, _ = edge_nets.graphs(int(active) if active != "1" else 0)
            want[active] = Executable(g, kernel_backend="torch").infer({"input": x})["output"]
        with Client(proc.address) as c:
            out = c.infer("mlp", {"input": x})
        np.testing.assert_array_equal(out["output"], want[active])
        with EdgeClient(proc.address) as c:
            (m,) = c.status().models
        assert m.version == active and m.selftest.passed
