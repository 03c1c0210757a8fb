"""The model repository of an edge agent: the OIP server's ModelRepository over an EdgeStore.

The agent runs the same server (stc.server.app.InferenceServer) as ``stc serve``; only the
repository differs. It serves each model's active version from the store, loads each bundle on
the backend the agent chose for it, and routes the stc repository service's Upload into the
agent's verified activation. Delete, Load and Unload are refused (FAILED_PRECONDITION): on an
edge node versions change only through activation or rollback, so the A/B record stays true.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
from stc.server.errors import ServingError
from stc.server.repository import LoadedModel, ModelRepository, runtime_loader

from .store import EdgeStore


def _refuse(what: str) -> ServingError:
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                        f"{what} is not available on an edge agent: versions change only by "
                        "activation (stc fleet deploy / EdgeAgent.Deploy) or rollback "
                        "(stc fleet rollback)")


class EdgeRepository(ModelRepository):
    """ModelRepository whose bundles are the store's active records.

    Args:
        store: the EdgeStore.
        backend: the node's best device (batching is on for cpu/gpu, as in ``stc serve``).
        public_key: Ed25519 key every bundle must be signed with (None: no signature needed).
        install: ``(staged_path, name, version) -> None``: the agent's activation, used for
            Upload (name and version as the upload announced them).
        **kw: ModelRepository batching settings.
    """

    def __init__(self, store: EdgeStore, *, backend: str, public_key: object = None,
                 install: Callable[[Path, str, str], object] | None = None, **kw) -> None:
        self.store = store
        self._choices: dict[Path, tuple[str, str | None]] = {}
        self._public_key = public_key
        self._install_fn = install
        super().__init__(store.models_dir, self._load_chosen, backend=backend, **kw)

    def _load_chosen(self, path: Path):
        backend, numerics = self._choices.get(Path(path), (self.backend, None))
        return runtime_loader(backend, numerics, self._public_key)(path)

    # -- what is served -----------------------------------------------------------------------
    def on_disk(self) -> list[tuple[str, str]]:
        """(name, active version) of every model with an active record."""
        out = []
        for name in self.store.names():
            rec = (self.store.model(name) or {}).get("active")
            if rec:
                out.append((name, rec["version"]))
        return out

    def bundle_path(self, name: str, version: str) -> Path:
        """The store file of ``name``'s active or previous record at ``version``."""
        m = self.store.model(name) or {}
        for key in ("active", "previous"):
            rec = m.get(key)
            if rec and rec["version"] == version:
                return self.store.bundle_file(rec)
        return self.store.models_dir / name / f"{version}-none" / "model.stcb"

    def load_all(self) -> list[tuple[str, str]]:
        """No-op: the agent loads and self-tests active versions before the server starts."""
        return [(m.name, m.version) for m in self.loaded()]

    # -- used by the agent --------------------------------------------------------------------
    def open_model(self, name: str, version: str, path: Path, backend: str,
                   numerics: str | None) -> LoadedModel:
        """Load ``path`` on ``backend`` (not yet served). Raises what the loader raises."""
        self._choices[Path(path)] = (backend, numerics)
        return self._open(name, version, Path(path))

    def publish(self, model: LoadedModel) -> None:
        """Serve ``model`` and unload every other version of its name. Requests already
        queued on the old version finish there (its batcher drains); requests that race the
        switch are retried once on the new version by the servicer."""
        self._swap(model)
        for v in self.versions(model.name):
            if v != model.version:
                ModelRepository.unload(self, model.name, v)

    # -- the repository service's admin calls ------------------------------------------------
    def staging_path(self, name: str, version: str) -> Path:
        """Upload target: a fresh file under the store's staging/."""
        return self.store.new_staging_path()

    def install(self, name: str, version: str, staged: Path, *, load: bool = True) -> bool:
        """Upload on an edge agent = a deployment with default options (verified,
        self-tested, A/B switched). Raises ServingError as the activation does."""
        if self._install_fn is None:
            raise _refuse("Upload")
        self._install_fn(staged, name, version)
        return True

    def delete(self, name: str, version: str = "") -> list[str]:
        """Refused (FAILED_PRECONDITION)."""
        raise _refuse("Delete")

    def load(self, name: str, version: str = "") -> list[str]:
        """Refused (FAILED_PRECONDITION)."""
        raise _refuse("Load")

    def unload(self, name: str, version: str = "") -> list[str]:
        """Refused (FAILED_PRECONDITION)."""
        raise _refuse("Unload")
