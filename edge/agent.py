"""The edge node agent: the OIP server of ``stc serve`` plus the EdgeAgent service, over an
EdgeStore with verified, self-tested, atomic A/B activation and automatic rollback.

``EdgeAgent(store_dir, ...).start()`` probes the hardware, recovers the store (below), and
starts ``stc.server.app.InferenceServer`` (the same server code as ``stc serve``) with an
EdgeRepository and the EdgeAgent servicer (proto/edge.proto) on one port.

Activation of a pushed bundle (``activate``), one at a time:
 1. verify: ``stc.bundle.read_bundle`` (hashes, format, the signature when the agent has a
    public key; unsigned bundles are refused then);
 2. refuse a version not newer than the active one unless the deployment allows a downgrade
    (rollback-attack defence, as The Update Framework requires); re-pushing the active bundle
    is a no-op;
 3. choose the backend (stc.edge.probe.choose_backend: loihi > gpu > cpu unless requested);
 4. move the bundle into its own store folder (fsynced);
 5. load it on that backend and run its self-test (stc.bundle.selftest; bit-exact for fixed,
    the stated tolerance for float) while the old version keeps serving;
 6. write the A/B record {active: new, previous: old} durably (fsync + rename): the switch;
 7. serve the new executable and unload the old one after its queued requests finish.
A failure in 1-5 leaves the record and the serving version untouched, deletes the new folder
and records the reason in ``last_error``.

Recovery at start: staging files and folders no record names are deleted (an interrupted
push); for each model the active record is checked (file hash), loaded and self-tested; if
that fails the previous record is tried and, if good, made active (persisted), the reason kept.
So after ``kill -9`` at any point exactly one complete, self-tested version is active.

Fault injection for tests: ``STC_EDGE_CRASH_AT=<phase>[,<phase>]`` makes the agent SIGKILL
itself at a phase of ``activate`` (``staged``, ``placed``, ``selftested``, ``switched``);
``@FILE`` reads the phases from FILE at each point (so a running agent can be armed).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
from pathlib import Path

import grpc
from stc.server.errors import ServingError, invalid
from stc.server.repository import check_name, sha256_file, version_key

from .probe import Hardware, choose_backend, probe
from .repository import EdgeRepository
from .store import EdgeStore, now_iso

log = logging.getLogger("stc.edge")
CRASH_ENV = "STC_EDGE_CRASH_AT"
PHASES = ("staged", "placed", "selftested", "switched")


def _crash_point(phase: str) -> None:
    wanted = os.environ.get(CRASH_ENV, "")
    if wanted.startswith("@"):  # phases listed in a file, read at each point
        try:
            wanted = Path(wanted[1:]).read_text().strip()
        except OSError:
            wanted = ""
    if phase in wanted.split(","):
        log.warning("fault injection: SIGKILL", extra={"event": "crash", "phase": phase})
        os.kill(os.getpid(), signal.SIGKILL)


def failed(message: str) -> ServingError:
    """FAILED_PRECONDITION: the node refuses the change (downgrade, self-test, backend)."""
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


class EdgeAgent:
    """One edge node (see the module docstring).

    Args:
        store: store folder.
        host, port: bind address (port 0 = any free port, see ``.port``).
        public_key: Ed25519 public key (path/PEM): only bundles signed with it are accepted.
        token: Bearer token required on every RPC (health exempt).
        tls_cert, tls_key: PEM files enabling TLS.
        device: node-wide device preference ("" / None = loihi > gpu > cpu).
        sequence_idle_s, max_sequences: streaming-state limits of the OIP server.
        **server_fields: more stc.server.app.ServerConfig fields (max_batch, ...).

    Raises:
        stc.edge.store.StoreError: the store's record is unreadable. ValueError: bad config.
    """

    def __init__(self, store: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 public_key: str | None = None, token: str | None = None,
                 tls_cert: str | None = None, tls_key: str | None = None,
                 device: str | None = None, **server_fields) -> None:
        from stc.server.app import ServerConfig

        self.store = EdgeStore(store)
        self.public_key = public_key
        self.device = device or None
        self.hardware: Hardware = probe()
        self._lock = threading.Lock()
        best = next(d for d in self.hardware.devices() if d != "lava-sim")
        self.config = ServerConfig(host=host, port=port, backend=best, token=token,
                                   tls_cert=tls_cert, tls_key=tls_key, public_key=public_key,
                                   **server_fields).validate()
        self.repository = EdgeRepository(self.store, backend=best, public_key=public_key,
                                         install=self._install_upload,
                                         max_batch=self.config.max_batch,
                                         max_delay_ms=self.config.max_delay_ms,
                                         queue_size=self.config.queue_size)
        self.server = None
        self.port: int | None = None
        self.recovery: list[str] = []

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> int:
        """Recover the store, load active versions, start serving; returns the port."""
        from stc.proto import edge_pb2_grpc
        from stc.server.app import InferenceServer

        from .service import EdgeServicer

        self.recovery = self.recover()

        def add(server: grpc.Server) -> str:
            edge_pb2_grpc.add_EdgeAgentServicer_to_server(
                EdgeServicer(self, max_bundle_bytes=self.config.max_bundle_bytes), server)
            return "stc.edge.EdgeAgent"

        self.server = InferenceServer(self.config, self.repository, extra_services=[add])
        self.port = self.server.start()
        log.info("edge agent", extra={"event": "edge_start", "store": str(self.store.root),
                                      "hardware": self.hardware.summary(),
                                      "recovery": self.recovery})
        return self.port

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop of the server (drains requests)."""
        if self.server is not None:
            self.server.stop(grace)

    def recover(self) -> list[str]:
        """Make the store consistent and load every model's good version (module docstring).
        Returns one line per action taken."""
        notes = [f"removed {p}" for p in self.store.collect_garbage()]
        for name in self.store.names():
            m = self.store.model(name)
            for key in ("active", "previous"):
                rec = m.get(key)
                if not rec:
                    continue
                problem = self.store.check_file(rec)
                model = None
                if problem is None:
                    try:
                        model = self.repository.open_model(name, rec["version"],
                                                           self.store.bundle_file(rec),
                                                           rec["backend"], rec["numerics"])
                    except Exception as e:  # noqa: BLE001
                        problem = f"load failed: {type(e).__name__}: {e}"
                if model is not None:
                    from stc.bundle import read_bundle
                    from stc.bundle.selftest import run

                    section = read_bundle(self.store.bundle_file(rec)).manifest.get("selftest")
                    st = run(model.executable, section, rec["numerics"])
                    if not st.passed:
                        model.close()
                        problem = f"self-test failed: {st.detail}"
                if problem is None:
                    self.repository.publish(model)
                    if key == "previous":
                        why = f"active {m['active']['version']} unusable at start"
                        m = {"active": rec, "previous": None,
                             "last_error": f"{why}: {m.get('last_error', '')}".rstrip(": ")}
                        self.store.state["models"][name] = m
                        self.store.write_state()
                        notes.append(f"{name}: rolled back to {rec['version']} ({why})")
                    else:
                        notes.append(f"{name}: {rec['version']} active")
                    break
                m["last_error"] = f"{key} {rec['version']}: {problem}"
                notes.append(f"{name}: {m['last_error']}")
        self.store.collect_garbage()
        return notes

    # -- activation -----------------------------------------------------------------------
    def _install_upload(self, staged: Path, name: str, version: str) -> None:
        self.activate(staged, expect=(name, version))

    def activate(self, staged: Path, *, device: str | None = None, allow_downgrade: bool = False,
                 numerics: str | None = None, expect: tuple[str, str] | None = None
                 ) -> tuple[str, dict, bool, str]:
        """Verify, self-test and switch to a staged bundle (module docstring, steps 1-7).

        Args:
            staged: a complete bundle file under the store's staging/ (consumed).
            device: requested device (None: the agent's preference, else loihi > gpu > cpu).
            allow_downgrade: accept a version not newer than the active one.
            numerics: "float" | "fixed" | None (fixed on Lava backends, else the bundle's).
            expect: (name, version) the pusher announced; must match the manifest.

        Returns:
            (model name, its active record, changed, message).

        Raises:
            ServingError: INVALID_ARGUMENT (bundle fails verification, name mismatch),
            FAILED_PRECONDITION (downgrade, backend absent, load or self-test failure); the
            previous version stays active in every case.
        """
        from stc.bundle import read_bundle
        from stc.bundle.selftest import run
        from stc.errors import BundleError, UnsupportedTargetError

        staged = Path(staged)
        with self._lock:
            folder = None
            try:
                _crash_point("staged")
                try:
                    bundle = read_bundle(staged, public_key=self.public_key)
                except BundleError as e:
                    raise invalid(f"bundle rejected: {e}") from None
                name, version = bundle.name, bundle.version
                check_name("model name", name)
                check_name("version", version)
                if expect is not None and expect != (name, version):
                    raise invalid(f"upload announced {expect[0]}:{expect[1]} but the bundle's "
                                  f"manifest says {name}:{version}")
                sha = sha256_file(staged)
                m = self.store.model(name) or {"active": None, "previous": None,
                                               "last_error": ""}
                active = m.get("active")
                if active and active["sha256"] == sha:
                    staged.unlink(missing_ok=True)
                    return name, active, False, f"{name}:{version} is already active"
                if (active and not allow_downgrade
                        and version_key(version) <= version_key(active["version"])):
                    raise failed(f"{name}: version {version} is not newer than the active "
                                 f"version {active['version']}; downgrade refused (allow it "
                                 "with --allow-downgrade)")
                try:
                    backend, reason = choose_backend(self.hardware,
                                                     has_fixed=bundle.fixed_graph is not None,
                                                     requested=device or self.device)
                except (UnsupportedTargetError, ValueError) as e:
                    raise failed(f"{name}:{version}: {e}") from None
                mode = numerics or ("fixed" if backend in ("lava-sim", "loihi")
                                    else bundle.manifest["numerics"])
                if mode == "fixed" and bundle.fixed_graph is None:
                    raise failed(f"{name}:{version}: fixed numerics requested but the bundle "
                                 "has no fixed-point graph")
                folder = self.store.place(staged, name, version, sha)
                rec = {"version": version, "sha256": sha, "size": staged_size(self.store,
                                                                            folder),
                       "folder": folder, "backend": backend, "backend_reason": reason,
                       "numerics": mode, "signed": bundle.signed, "selftest": None,
                       "activated_at": ""}
                _crash_point("placed")
                try:
                    model = self.repository.open_model(name, version,
                                                       self.store.bundle_file(rec), backend,
                                                       mode)
                except Exception as e:  # noqa: BLE001 - any load error keeps the old one
                    raise failed(f"{name}:{version} failed to load on {backend}: "
                                 f"{type(e).__name__}: {e}") from None
                st = run(model.executable, bundle.manifest.get("selftest"), mode)
                rec["selftest"] = st.to_dict()
                if not st.passed:
                    model.close()
                    raise failed(f"{name}:{version} self-test failed on {backend}: {st.detail}")
                _crash_point("selftested")
                rec["activated_at"] = now_iso()
                old_prev = m.get("previous")
                self.store.state["models"][name] = {"active": rec, "previous": active,
                                                    "last_error": ""}
                self.store.write_state()
                folder = None  # committed
                _crash_point("switched")
                self.repository.publish(model)
                if old_prev and old_prev["folder"] not in (rec["folder"],
                                                           (active or {}).get("folder")):
                    shutil.rmtree(self.store.models_dir / old_prev["folder"],
                                  ignore_errors=True)
                log.info("activated", extra={"event": "activate", "model": name,
                                             "version": version, "backend": backend,
                                             "selftest": st.detail})
                return name, rec, True, (f"{name}:{version} active on {backend} "
                                   f"({st.detail}); previous "
                                   f"{active['version'] if active else 'none'}")
            except ServingError as err:
                self._record_error(staged, folder, err.message)
                raise
            except BaseException as e:
                self._record_error(staged, folder, f"{type(e).__name__}: {e}")
                raise

    def _record_error(self, staged: Path, folder: str | None, message: str) -> None:
        staged.unlink(missing_ok=True)
        name = None
        if folder is not None:
            name = folder.split("/")[0]
            shutil.rmtree(self.store.models_dir / folder, ignore_errors=True)
        if name and self.store.model(name) is not None:
            self.store.state["models"][name]["last_error"] = message
            self.store.write_state()
        log.warning("activation failed", extra={"event": "activate_failed", "error": message})

    def rollback(self, name: str) -> tuple[dict, bool, str]:
        """Make ``name``'s previous version active again after loading and self-testing it.

        Raises:
            ServingError: NOT_FOUND (no such model), FAILED_PRECONDITION (no previous version,
            or it fails to load or self-test; the active version stays).
        """
        from stc.bundle import read_bundle
        from stc.bundle.selftest import run

        with self._lock:
            m = self.store.model(name)
            if m is None or not m.get("active"):
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"model {name!r} is not deployed on this node; deployed: "
                                   f"{self.store.names()}")
            prev, active = m.get("previous"), m["active"]
            if not prev:
                raise failed(f"{name}: no previous version to roll back to (active "
                             f"{active['version']})")
            problem = self.store.check_file(prev)
            if problem:
                raise failed(f"{name}: previous version {prev['version']} is unusable: "
                             f"{problem}")
            path = self.store.bundle_file(prev)
            try:
                model = self.repository.open_model(name, prev["version"], path,
                                                   prev["backend"], prev["numerics"])
            except Exception as e:  # noqa: BLE001
                raise failed(f"{name}: previous version {prev['version']} failed to load: "
                             f"{type(e).__name__}: {e}") from None
            st = run(model.executable, read_bundle(path).manifest.get("selftest"),
                     prev["numerics"])
            if not st.passed:
                model.close()
                raise failed(f"{name}: previous version {prev['version']} self-test failed: "
                             f"{st.detail}")
            prev = {**prev, "selftest": st.to_dict(), "activated_at": now_iso()}
            self.store.state["models"][name] = {"active": prev, "previous": active,
                                                "last_error": ""}
            self.store.write_state()
            self.repository.publish(model)
            return prev, True, f"{name}: rolled back from {active['version']} to " \
                               f"{prev['version']} ({st.detail})"

    def refresh_hardware(self) -> Hardware:
        """Probe again (new devices apply to later deployments)."""
        self.hardware = probe()
        return self.hardware


def staged_size(store: EdgeStore, folder: str) -> int:
    """Size in bytes of the bundle in ``folder``."""
    return (store.models_dir / folder / "model.stcb").stat().st_size
