"""`stc serve --repository` with a typo is refused (nothing is created), and the entries a
repository ignores are reported with the reason instead of being skipped without a word."""

from __future__ import annotations

from stc.server.repository import ModelRepository
from typer.testing import CliRunner

from stc.cli.main import app


def test_serve_refuses_a_missing_repository_and_creates_nothing(tmp_path):
    missing = tmp_path / "nope"
    r = CliRunner().invoke(app, ["serve", "--repository", str(missing), "--port", "0"])
    text = " ".join(r.output.replace("│", " ").split())  # rich wraps the error box
    assert r.exit_code == 2 and "is not a folder" in text, r.output
    assert not missing.exists()


def test_skipped_entries_are_named_with_the_reason(tmp_path):
    (tmp_path / "flat.stcb").write_bytes(b"x")
    (tmp_path / "bad name").mkdir()
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "notes.txt").write_text("x")
    repo = ModelRepository(tmp_path, loader=lambda p: None)
    got = repo.skipped()
    assert any(e.startswith("flat.stcb: not a model folder") for e in got), got
    assert any(e.startswith("bad name/: model name must match") for e in got), got
    assert "m/1/: no model.stcb" in got and "m/notes.txt: not a version folder" in got, got
    assert repo.on_disk() == []
