"""Three real agents (separate processes and stores) on loopback, driven by ``stc fleet``:
roll-out with self-tests, a failing canary stops the roll-out with the others untouched,
downgrade refused, rollback, zero failed requests during a version switch. Outputs served by
the nodes are compared with the runtime run locally on the same graphs."""

import json
import threading

import edge_nets
import numpy as np
import pytest
from typer.testing import CliRunner

from stc.cli.main import app
from stc.client import Client
from stc.runtime import Executable

pytestmark = pytest.mark.slow


def _fleet(*args):
    res = CliRunner().invoke(app, ["fleet", *args, "--json"])
    try:
        doc = json.loads(res.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"exit {res.exit_code}: {res.output}") from None
    return res.exit_code, {r["node"]: r for r in doc["nodes"]}


def _reference(seed, x):
    g, _ = edge_nets.graphs(seed)
    return Executable(g, kernel_backend="torch").infer({"input": x})["output"]


def test_fleet_rollout_canary_downgrade_rollback(tmp_path, agents):
    b1 = edge_nets.write(tmp_path / "v1.stcb", version="1", seed=0)
    b2 = edge_nets.write(tmp_path / "v2.stcb", version="2", seed=1)
    bad = edge_nets.write(tmp_path / "v3.stcb", version="3", seed=0, broken_selftest=True)
    procs = agents([tmp_path / f"store{i}" for i in range(3)])
    nodes = tmp_path / "nodes.toml"
    nodes.write_text("".join(f'[nodes.n{i}]\naddress = "{p.address}"\n'
                             for i, p in enumerate(procs)))
    x = np.random.default_rng(0).integers(0, 4, (3, edge_nets.D_IN)).astype(np.float32)
    want1, want2 = _reference(0, x), _reference(1, x)
    assert not np.array_equal(want1, want2)  # the versions are distinguishable

    code, rows = _fleet("deploy", str(b1), "--nodes", str(nodes))
    assert code == 0
    for r in rows.values():
        assert (r["status"], r["version"], r["backend"]) == ("activated", "1", "cpu")
        assert r["selftest"].startswith("pass") and "cpu" in r["devices"]
    for p in procs:
        with Client(p.address) as c:
            np.testing.assert_array_equal(c.infer("mlp", {"input": x})["output"], want1)

    # a canary whose self-test fails stops the roll-out; the others are untouched
    code, rows = _fleet("deploy", str(bad), "--nodes", str(nodes), "--canary", "1")
    assert code == 1
    assert rows["n0"]["status"] == "failed" and "self-test failed" in rows["n0"]["message"]
    assert rows["n1"]["status"] == rows["n2"]["status"] == "skipped"
    code, rows = _fleet("status", "--nodes", str(nodes))
    assert code == 0 and {r["version"] for r in rows.values()} == {"1"}
    assert "self-test failed" in rows["n0"]["message"] and rows["n1"]["message"] == ""

    # v2 while a client keeps sending requests to n0: none fails, answers switch version
    seen, errors, stop = [], [], threading.Event()

    def client():
        with Client(procs[0].address) as c:
            while not stop.is_set() and len(seen) < 5000:
                try:
                    seen.append(c.infer("mlp", {"input": x})["output"])
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

    th = threading.Thread(target=client)
    th.start()
    try:
        code, rows = _fleet("deploy", str(b2), "--nodes", str(nodes))
    finally:
        stop.set()
        th.join(30)
    assert code == 0 and {(r["version"], r["previous"]) for r in rows.values()} == {("2", "1")}
    assert errors == [] and len(seen) > 0
    assert all(np.array_equal(s, want1) or np.array_equal(s, want2) for s in seen)

    # downgrade refused everywhere (all nodes tried: --max-failures 3)
    code, rows = _fleet("deploy", str(b1), "--nodes", str(nodes), "--max-failures", "3")
    assert code == 1
    assert all("downgrade refused" in r["message"] and r["version"] == "2"
               for r in rows.values())

    code, rows = _fleet("rollback", "mlp", "--nodes", str(nodes))
    assert code == 0 and {r["version"] for r in rows.values()} == {"1"}
    for p in procs:
        with Client(p.address) as c:
            np.testing.assert_array_equal(c.infer("mlp", {"input": x})["output"], want1)

    # unknown node and a node file error are bad input (exit 2), an unreachable node fails
    assert CliRunner().invoke(app, ["fleet", "status", "--nodes", str(nodes), "--node",
                                    "nope"]).exit_code == 2
    procs[2].stop()
    code, rows = _fleet("status", "--nodes", str(nodes))
    assert code == 1 and rows["n2"]["message"].startswith("unreachable")
