"""Install extras: each missing one gives a one-line message with its install command."""

import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stc.cli.main import app
from stc.extras import EXTRAS, MissingExtraError, require

ROOT = Path(__file__).resolve().parents[2]


def test_every_named_extra_exists_in_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    assert set(EXTRAS) <= set(extras) and "dev" in extras
    assert not any(d.replace(" ", "").startswith("numpy") and "<2" in d
                   for d in meta["dependencies"]), "the core must not pin numpy<2"
    assert any(d.startswith("numpy") and "<2" in d for d in extras["lava"])  # lava-nc needs it


def test_missing_extra_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "spikingjelly", None)  # import raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'stc\[bench\]'"):
        require("spikingjelly", "bench", "stc bench")
    r = CliRunner().invoke(app, ["bench", "--small"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "stc[bench]" in " ".join(r.output.split())
