"""`stc bench` end to end on a tiny preset (CPU), and its usage errors."""

import json

from typer.testing import CliRunner

from stc.cli.main import app


def test_cli_bench_tiny(tmp_path):
    r = CliRunner().invoke(app, [
        "bench", "--small", "--models", "sdt_tiny", "--batch-sizes", "1,2", "--img-size", "8",
        "--repeats", "1", "--out", str(tmp_path), "--stem", "t"])
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "t.json").read_text())
    rows = data["models"]["sdt_tiny"]["rows"]
    assert [row["batch"] for row in rows] == [1, 2] and all(row["agree"] for row in rows)
    assert "--models sdt_tiny" in data["command"]
    assert "[2/2] sdt_tiny batch 2" in r.output  # numbered points
    assert (tmp_path / "t_energy.png").exists() and (tmp_path / "t.md").exists()


def test_cli_bench_usage_errors(tmp_path):
    r = CliRunner().invoke(app, ["bench", "--batch-sizes", "1,x", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "batch-sizes" in r.output
    r = CliRunner().invoke(app, ["bench", "--models", "nope", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "nope" in r.output
