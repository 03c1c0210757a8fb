"""The edge store: bundles and the persisted A/B record of an edge node.

Layout under the store folder::

    state.json                       the A/B record (below); replaced atomically
    models/<name>/<version>-<sha12>/model.stcb   one folder per installed bundle, immutable
    staging/<uuid>.stcb              pushes being received (cleared at start)

``state.json`` = ``{"schema": 1, "models": {name: {"active": REC, "previous": REC | null,
"last_error": str}}}`` with ``REC = {"version", "sha256", "size", "folder", "backend",
"backend_reason", "numerics", "signed", "selftest": {...}, "activated_at"}``.

Power-loss rules (as in A/B updaters such as Mender/SWUpdate): a bundle is written to a new
folder and fsynced before the record names it; the record is written to a temp file, fsynced,
``os.replace``d over ``state.json`` and the folder fsynced (the switch is one rename). So after
a crash at any point the record names either the old or the new version, and both of its
folders are complete. ``collect_garbage`` deletes folders and staging files that no record
names (an interrupted push).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

from stc.server.repository import check_name, sha256_file

STATE_FILE = "state.json"
BUNDLE_FILE = "model.stcb"
SCHEMA = 1


def fsync_dir(path: Path) -> None:
    """fsync a directory (makes a rename in it durable); ignored where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def now_iso() -> str:
    """UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class StoreError(ValueError):
    """The store folder or its state.json is unusable (message names the file)."""


class EdgeStore:
    """An edge node's bundle store (see the module docstring).

    Args:
        root: store folder (created if missing).

    Raises:
        StoreError: state.json exists but is not a valid record.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.models_dir = self.root / "models"
        self.staging_dir = self.root / "staging"
        for d in (self.root, self.models_dir, self.staging_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.state = self._read()

    # -- the record -------------------------------------------------------------------------
    def _read(self) -> dict:
        path = self.root / STATE_FILE
        if not path.exists():
            return {"schema": SCHEMA, "models": {}}
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise StoreError(f"{path}: not a readable A/B record ({e})") from None
        if not isinstance(state, dict) or state.get("schema") != SCHEMA \
                or not isinstance(state.get("models"), dict):
            raise StoreError(f"{path}: unknown record format (expected schema {SCHEMA})")
        return state

    def write_state(self, state: dict | None = None) -> None:
        """Persist the record durably: temp file + fsync + os.replace + folder fsync."""
        with self._lock:
            if state is not None:
                self.state = state
            data = json.dumps(self.state, indent=1, sort_keys=True).encode()
            fd, tmp = tempfile.mkstemp(prefix=".state.", suffix=".tmp", dir=self.root)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.root / STATE_FILE)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            fsync_dir(self.root)

    def model(self, name: str) -> dict | None:
        """The record of ``name`` ({active, previous, last_error}) or None."""
        with self._lock:
            return self.state["models"].get(name)

    def names(self) -> list[str]:
        """Model names with a record, sorted."""
        with self._lock:
            return sorted(self.state["models"])

    # -- files ------------------------------------------------------------------------------
    def new_staging_path(self) -> Path:
        """A fresh path under staging/ for an incoming push."""
        return self.staging_dir / f"{uuid.uuid4().hex}.stcb"

    def bundle_file(self, rec: dict) -> Path:
        """The bundle file a record names."""
        return self.models_dir / rec["folder"] / BUNDLE_FILE

    def place(self, staged: Path, name: str, version: str, sha256: str) -> str:
        """Move a verified staged bundle into its own folder (fsynced); returns the folder
        (relative to models/). Raises ServingError INVALID_ARGUMENT for bad names."""
        check_name("model name", name)
        check_name("version", version)
        folder = f"{name}/{version}-{sha256[:12]}"
        target = self.models_dir / folder
        target.mkdir(parents=True, exist_ok=True)
        with open(staged, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(staged, target / BUNDLE_FILE)
        fsync_dir(target)
        fsync_dir(target.parent)
        return folder

    def check_file(self, rec: dict) -> str | None:
        """None if the record's bundle file exists with its SHA-256, else what is wrong."""
        path = self.bundle_file(rec)
        if not path.is_file():
            return f"{path} is missing"
        got = sha256_file(path)
        if got != rec["sha256"]:
            return f"{path} has SHA-256 {got[:12]}..., the record says {rec['sha256'][:12]}..."
        return None

    def collect_garbage(self) -> list[str]:
        """Delete staging files and model folders no record names; returns what was removed."""
        removed = []
        with self._lock:
            keep = {r["folder"] for m in self.state["models"].values()
                    for r in (m.get("active"), m.get("previous")) if r}
        for p in self.staging_dir.iterdir():
            p.unlink(missing_ok=True) if p.is_file() else shutil.rmtree(p, ignore_errors=True)
            removed.append(f"staging/{p.name}")
        for model_dir in self.models_dir.iterdir():
            if not model_dir.is_dir():
                continue
            for ver_dir in model_dir.iterdir():
                rel = f"{model_dir.name}/{ver_dir.name}"
                if rel not in keep:
                    shutil.rmtree(ver_dir, ignore_errors=True)
                    removed.append(f"models/{rel}")
            try:
                model_dir.rmdir()
            except OSError:
                pass
        for p in self.root.glob(".state.*.tmp"):
            p.unlink(missing_ok=True)
        return removed
