"""``stc inspect --json`` (layers, totals, the Loihi mapping summary), the 80-column table, and
``stc infer``'s top-k view and float64 cast."""

import json

import numpy as np
import torch
from torch import nn
from typer.testing import CliRunner

from stc.cli.infer import as_float32, format_output
from stc.cli.main import app
from stc.compiler import SpikeCompiler
from stc.nn import LIF


def test_inspect_json_and_narrow_table(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), LIF(backend="torch"), nn.Linear(6, 3),
                      LIF(backend="torch")).eval()
    path = SpikeCompiler("cpu", 3, 4).compile(m, (1, 4, 4)).save(tmp_path / "m.stcb")
    r = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["total_neurons"] == 6 + 3 and doc["fixed_graph"] is True
    ops = [x["op"] for x in doc["layers"]]
    assert ops.count("LoihiCubaLIF") == 2 and ops.count("Linear") == 2
    lin = [x for x in doc["layers"] if x["op"] == "Linear"]
    assert [x["params"] for x in lin] == [16 * 6, 6 * 3]  # fixed: biases move to the neurons
    loihi = doc["loihi_mapping"]
    assert loihi["executable"] is True and loihi["cores_used"] == 2 and loihi["chips_used"] == 1
    table = CliRunner().invoke(app, ["inspect", str(path)], env={"COLUMNS": "80"})
    assert table.exit_code == 0
    assert all(len(line) <= 80 for line in table.output.splitlines())
    for header in ("neurons", "synapses", "params"):
        assert header in table.output  # never cut to "neuro…"
    assert "Loihi 2 mapping: 2 core(s) on 1 of 1 chip(s)" in " ".join(table.output.split())


def test_infer_top_k_and_float64(capsys):
    logits = np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4]], np.float32)
    text = format_output("output", logits, top_k=2)
    assert "sample 0: 1 (0.7), 2 (0.2)" in text and "sample 1: 0 (0.5), 2 (0.4)" in text
    assert "[[" in format_output("output", logits, top_k=0)
    x = as_float32("input", np.zeros((1, 3)))
    assert x.dtype == np.float32
