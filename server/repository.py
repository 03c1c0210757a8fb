"""Model repository: a directory of ``.stcb`` bundles, loaded into executables on demand.

Layout (Triton-like, one folder per model, one per version)::

    <repo>/<name>/<version>/model.stcb

``name`` and ``version`` match ``[A-Za-z0-9][A-Za-z0-9_.-]*`` (at most 128 characters), so no
path can escape the repository. The served identity is the folder's name and version, not the
executable's own ``name``. "Latest" (an empty version in a request) is the highest loaded
version: numeric versions compare as integers and rank above non-numeric ones, which compare as
strings.

Hot replace: ``install`` loads a staged bundle first; only if that succeeds is the file moved
into place and the new executable swapped in (the old one drains its queue, then closes). A
bundle that fails to load (corrupted, bad hash or signature) is deleted and the version that was
serving keeps serving. This verification runs for every upload, also one stored without
loading it, so nothing unverified ever reaches the repository; a rejected upload to a new name
leaves no folders behind. Installed bundle files are mode 0644.

Error messages never contain the server's absolute paths (the repository root is written
``<repository>``) and cut client-supplied names to a few dozen characters.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from stc.server.batcher import Batcher
from stc.server.errors import ServingError, clip, invalid, not_found, shorten
from stc.server.executable import Executable, batchable, check_executable
from stc.server.metrics import ServerMetrics
from stc.server.stats import ModelStats

log = logging.getLogger("stc.server")

BUNDLE_FILE = "model.stcb"
BACKENDS = ("cpu", "gpu", "lava-sim", "loihi")
BATCHING_BACKENDS = ("cpu", "gpu")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")

Loader = Callable[[Path], Executable]


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a safe model name / version, else raise INVALID_ARGUMENT."""
    if not isinstance(value, str) or not _NAME_RE.match(value) or value in (".", ".."):
        raise invalid(f"{kind} {clip(value)} is invalid; expected letters, digits, '_', '.', '-' "
                      "(first a letter or digit, at most 128 characters)")
    return value


def version_key(version: str) -> tuple[int, int, str]:
    """Sort key: numeric versions ascending (as integers) after non-numeric ones."""
    return (1, int(version), "") if version.isdigit() else (0, 0, version)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def runtime_loader(backend: str = "cpu", numerics: str | None = None,
                   public_key: object = None, *, input_policy: str = "reject",
                   precision: str = "fp32") -> Loader:
    """A loader calling ``stc.runtime.load_bundle(path, device=backend, numerics=...,
    public_key=..., input_policy=..., precision=...)`` (imported when first used).

    Raises:
        ValueError: ``backend`` is not one of cpu, gpu, lava-sim, loihi.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")

    def load(path: Path) -> Executable:
        from stc.runtime import load_bundle

        return load_bundle(path, device=backend, numerics=numerics, public_key=public_key,
                           input_policy=input_policy, precision=precision)

    return load


@dataclass
class LoadedModel:
    """One served model version: its executable, batcher and bundle file facts."""

    name: str
    version: str
    executable: Executable
    batcher: Batcher
    path: Path
    sha256: str
    size: int
    extra: dict = field(default_factory=dict)
    stats: ModelStats = field(default_factory=ModelStats)

    def close(self) -> None:
        """Drain the batcher's queue, then close the executable."""
        self.batcher.close()
        self.executable.close()


class ModelRepository:
    """Bundles under ``root`` and the versions currently loaded.

    Args:
        root: repository folder (created if missing).
        loader: ``path -> Executable``; default ``runtime_loader(backend)``.
        backend: "cpu" | "gpu" | "lava-sim" | "loihi"; dynamic batching only on cpu/gpu.
        max_batch, max_delay_ms, queue_size: batcher settings (see stc.server.batcher).
        metrics: shared ServerMetrics.

    Raises:
        ValueError: unknown backend.
    """

    def __init__(self, root: str | Path, loader: Loader | None = None, *, backend: str = "cpu",
                 max_batch: int = 8, max_delay_ms: float = 2.0, queue_size: int = 256,
                 metrics: ServerMetrics | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.loader = loader or runtime_loader(backend)
        self.max_batch = max_batch
        self.max_delay_ms = max_delay_ms
        self.queue_size = queue_size
        self.metrics = metrics or ServerMetrics()
        self.inflight: Callable[[], int] | None = None  # set by InferenceServer
        self._models: dict[str, dict[str, LoadedModel]] = {}
        self._lock = threading.RLock()
        self._load_lock = threading.Lock()
        self.metrics.models = lambda: [(m.name, m.version, m.stats) for m in self.loaded()]

    # -- paths ------------------------------------------------------------------------------
    def bundle_path(self, name: str, version: str) -> Path:
        """``<root>/<name>/<version>/model.stcb`` (names checked)."""
        return self.root / check_name("model name", name) / check_name("version", version) \
            / BUNDLE_FILE

    def staging_path(self, name: str, version: str) -> Path:
        """A fresh temporary path next to the bundle (``*.stcb.tmp-<id>``, git-ignored)."""
        final = self.bundle_path(name, version)
        final.parent.mkdir(parents=True, exist_ok=True)
        return final.with_name(f"{BUNDLE_FILE}.tmp-{uuid.uuid4().hex}")

    def on_disk(self) -> list[tuple[str, str]]:
        """(name, version) of every bundle file in the repository, sorted."""
        found = []
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for ver_dir in sorted(p for p in model_dir.iterdir() if p.is_dir()):
                if (ver_dir / BUNDLE_FILE).is_file() and _NAME_RE.match(model_dir.name) \
                        and _NAME_RE.match(ver_dir.name):
                    found.append((model_dir.name, ver_dir.name))
        return found

    def skipped(self) -> list[str]:
        """Entries under the repository that ``on_disk`` ignores, each with the reason (a
        flat ``.stcb`` file, a bad model or version folder name, a version folder without
        ``model.stcb``), for the operator to see at start."""
        out = []
        for p in sorted(self.root.iterdir()):
            if not p.is_dir():
                out.append(f"{p.name}: not a model folder (expected "
                           f"<model>/<version>/{BUNDLE_FILE})")
                continue
            if not _NAME_RE.match(p.name):
                out.append(f"{p.name}/: model name must match {_NAME_RE.pattern}")
                continue
            for v in sorted(p.iterdir()):
                if not v.is_dir():
                    out.append(f"{p.name}/{v.name}: not a version folder")
                elif not _NAME_RE.match(v.name):
                    out.append(f"{p.name}/{v.name}/: version name must match "
                               f"{_NAME_RE.pattern}")
                elif not (v / BUNDLE_FILE).is_file():
                    out.append(f"{p.name}/{v.name}/: no {BUNDLE_FILE}")
        return out

    # -- queries ----------------------------------------------------------------------------
    def versions(self, name: str) -> list[str]:
        """Loaded versions of ``name``, oldest first (empty if none)."""
        with self._lock:
            return sorted(self._models.get(name, {}), key=version_key)

    def loaded(self) -> list[LoadedModel]:
        """Every loaded model version."""
        with self._lock:
            return [m for vs in self._models.values() for m in vs.values()]

    def get(self, name: str, version: str = "") -> LoadedModel:
        """The loaded ``name`` at ``version`` ("" = latest).

        Raises:
            ServingError: NOT_FOUND naming the model, version and the loaded versions.
        """
        with self._lock:
            versions = self._models.get(name)
            if not versions:
                known = sorted(self._models)
                raise not_found(f"model {clip(name)} is not loaded; loaded models: "
                                f"{shorten(str(known))}")
            if not version:
                version = max(versions, key=version_key)
            model = versions.get(version)
            if model is None:
                raise not_found(f"model {name!r} has no loaded version {clip(version)}; "
                                f"loaded versions: {sorted(versions, key=version_key)}")
            return model

    # -- load / unload ----------------------------------------------------------------------
    def _open(self, name: str, version: str, path: Path) -> LoadedModel:
        exe = check_executable(self.loader(path))
        batching = self.backend in BATCHING_BACKENDS and batchable(exe)
        label = f"{name}:{version}"
        stats = ModelStats()
        batcher = Batcher(exe, label, max_batch=self.max_batch, max_delay_ms=self.max_delay_ms,
                          queue_size=self.queue_size, batching=batching, metrics=self.metrics,
                          inflight=self.inflight, stats=stats)
        return LoadedModel(name, version, exe, batcher, path, sha256_file(path),
                           path.stat().st_size, stats=stats)

    def scrub(self, message: str) -> str:
        """``message`` with the repository's absolute path replaced by ``<repository>``."""
        for root in {str(self.root.resolve()), str(self.root)}:
            message = message.replace(root, "<repository>")
        return shorten(message, 500)

    def _swap(self, model: LoadedModel) -> None:
        with self._lock:
            old = self._models.setdefault(model.name, {}).get(model.version)
            self._models[model.name][model.version] = model
        if old is not None:
            old.close()
        log.info("loaded", extra={"event": "load", "model": model.name,
                                  "version": model.version, "sha256": model.sha256})

    def load(self, name: str, version: str = "") -> list[str]:
        """Load ``name`` at ``version`` ("" = every version on disk); returns those loaded.

        Raises:
            ServingError: NOT_FOUND (no such bundle), INVALID_ARGUMENT (the bundle fails to
                load, with the loader's message).
        """
        check_name("model name", name)
        targets = [v for n, v in self.on_disk() if n == name and (not version or v == version)]
        if not targets:
            raise not_found(f"no bundle {name!r} version {clip(version or '(any)')} in the "
                            "repository")
        with self._load_lock:
            for v in targets:
                path = self.bundle_path(name, v)
                try:
                    model = self._open(name, v, path)
                except ServingError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any loader error rejects the bundle
                    raise invalid(self.scrub(f"bundle {name}/{v} failed to load: "
                                             f"{type(exc).__name__}: {exc}")) from exc
                self._swap(model)
        return targets

    def load_all(self) -> list[tuple[str, str]]:
        """Load every bundle on disk; bundles that fail are logged and skipped."""
        done = []
        for name, version in self.on_disk():
            try:
                self.load(name, version)
                done.append((name, version))
            except ServingError as err:
                log.error("load failed", extra={"event": "load_failed", "model": name,
                                                "version": version, "error": err.message})
        return done

    def unload(self, name: str, version: str = "") -> list[str]:
        """Unload ``name`` at ``version`` ("" = all); queued requests finish first.

        Raises:
            ServingError: NOT_FOUND if nothing matching is loaded.
        """
        with self._lock:
            versions = self._models.get(name, {})
            chosen = [v for v in versions if not version or v == version]
            if not chosen:
                raise not_found(f"model {clip(name)} version {clip(version or '(any)')} is not "
                            "loaded")
            removed = [versions.pop(v) for v in chosen]
            if not versions:
                self._models.pop(name, None)
        for model in removed:
            model.close()
        return sorted(chosen, key=version_key)

    def delete(self, name: str, version: str = "") -> list[str]:
        """Unload (if loaded) and delete bundle files of ``name`` at ``version`` ("" = all).

        Raises:
            ServingError: NOT_FOUND if no such bundle exists on disk.
        """
        targets = [v for n, v in self.on_disk() if n == name and (not version or v == version)]
        if not targets:
            raise not_found(f"no bundle {clip(name)} version {clip(version or '(any)')} to "
                            "delete")
        for v in targets:
            if v in self.versions(name):
                self.unload(name, v)
            path = self.bundle_path(name, v)
            path.unlink()
            try:
                path.parent.rmdir()
            except OSError:
                pass
        try:
            (self.root / name).rmdir()
        except OSError:
            pass
        return targets

    def install(self, name: str, version: str, staged: Path, *, load: bool = True) -> bool:
        """Verify a staged (already digest-checked) bundle and move it into place, hot-replacing
        a loaded one when ``load`` is true. Returns whether the bundle is now loaded.

        The staged file is always opened with the loader first (hashes, format and, under a
        public key, the signature), whatever ``load`` says; with ``load=False`` the executable
        is closed again and the file only stored. If that fails the staged file is deleted,
        folders created for it are removed, the current bundle file and executable stay
        untouched, and INVALID_ARGUMENT is raised.

        Raises:
            ServingError: INVALID_ARGUMENT when the bundle does not verify / load.
        """
        final = self.bundle_path(name, version)
        with self._load_lock:
            try:
                model = self._open(name, version, staged)
            except Exception as exc:  # noqa: BLE001
                staged.unlink(missing_ok=True)
                self._remove_empty(name, version)
                msg = self.scrub(exc.message if isinstance(exc, ServingError)
                                 else f"{type(exc).__name__}: {exc}")
                log.warning("upload rejected", extra={"event": "upload_rejected", "model": name,
                                                      "version": version, "error": msg})
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"bundle {name}/{version} rejected, previous version keeps "
                                   f"serving: {msg}") from exc
            os.chmod(staged, 0o644)
            if not load:
                model.close()
                os.replace(staged, final)
                return False
            os.replace(staged, final)
            model.path = final
            self._swap(model)
        return True

    def _remove_empty(self, name: str, version: str) -> None:
        """Remove ``<root>/<name>/<version>`` and ``<root>/<name>`` if they are empty."""
        for folder in (self.root / name / version, self.root / name):
            try:
                folder.rmdir()
            except OSError:
                pass

    def close(self) -> None:
        """Unload everything (drains each queue)."""
        with self._lock:
            models = self.loaded()
            self._models.clear()
        for model in models:
            model.close()
