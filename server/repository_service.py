"""stc bundle repository servicer (``stc.repository.BundleRepository``, stc_repository.proto).

Upload is client-streamed: the first chunk names the model, version and SHA-256 (hex) of the
whole bundle; data is written to a staging file next to the target, hashed while streaming and
compared at the end (DATA_LOSS on mismatch, INVALID_ARGUMENT when the size differs from
``total_size``, RESOURCE_EXHAUSTED past ``max_bundle_bytes``). The staged bundle is then
installed with ``ModelRepository.install``, which verifies it (hashes, format, signature
under a public key) whatever ``load`` says; a bundle that fails is rejected and the previous
version keeps serving.

Hostile uploaders are bounded: at most ``max_uploads`` streams at a time (more get
RESOURCE_EXHAUSTED at once, so uploads never take every handler thread), a stream that sends
nothing for ``upload_idle_s`` seconds is cancelled, and one upload may last at most
``upload_timeout_s`` seconds. With ``read_only`` every call except List is refused with
PERMISSION_DENIED (``stc serve --read-only`` does not even register this service).
"""

from __future__ import annotations

import threading
import time

import grpc
from stc.proto import stc_repository_pb2 as pb
from stc.proto import stc_repository_pb2_grpc as pb_grpc
from stc.server.errors import ServingError
from stc.server.repository import ModelRepository, check_name, sha256_file
from stc.server.staging import check_announced, receive


class RepositoryServicer(pb_grpc.BundleRepositoryServicer):
    """Upload / List / Delete / Load / Unload over ``repository``.

    Args:
        repository: the ModelRepository to change.
        max_bundle_bytes: largest accepted upload (bytes).
        max_uploads: most Upload streams at once.
        upload_idle_s: longest pause between two chunks (s) before the stream is cancelled.
        upload_timeout_s: longest time one Upload may take (s).
    """

    def __init__(self, repository: ModelRepository, *, max_bundle_bytes: int = 1 << 30,
                 max_uploads: int = 4, upload_idle_s: float = 10.0,
                 upload_timeout_s: float = 600.0) -> None:
        self.repository = repository
        self.max_bundle_bytes = int(max_bundle_bytes)
        self.max_uploads = int(max_uploads)
        self.upload_idle_s = float(upload_idle_s)
        self.upload_timeout_s = float(upload_timeout_s)
        self._slots = threading.BoundedSemaphore(self.max_uploads)

    def _upload(self, chunks) -> pb.UploadResponse:
        first = next(chunks, None)
        want = check_announced(first, self.max_bundle_bytes, "upload")
        name = check_name("model name", first.name)
        version = check_name("version", first.version)
        staged = self.repository.staging_path(name, version)
        got, size = receive(first, chunks, staged, want=want, max_bytes=self.max_bundle_bytes,
                            first_only=("name", "version", "sha256"), what="upload",
                            mismatch=f"upload of {name}/{version} rejected, previous version "
                                     "keeps serving")
        loaded = self.repository.install(name, version, staged, load=first.load)
        return pb.UploadResponse(name=name, version=version, sha256=got, size=size,
                                 loaded=loaded)

    def Upload(self, request_iterator, context):  # noqa: N802 - gRPC method name
        """Client-streamed bundle upload (see the module docstring)."""
        if not self._slots.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{self.max_uploads} uploads are already running; retry later")
        watch = _Watchdog(context, self.upload_idle_s, self.upload_timeout_s)
        try:
            return self._upload(watch.wrap(request_iterator))
        except ServingError as err:
            context.abort(err.code, err.message)
        except grpc.RpcError:  # the stream was cancelled (by the client or the watchdog)
            code = grpc.StatusCode.DEADLINE_EXCEEDED if watch.fired else \
                grpc.StatusCode.CANCELLED
            context.abort(code, watch.fired or "upload cancelled")
        finally:
            watch.stop()
            self._slots.release()

    def List(self, request, context):  # noqa: N802
        """Every bundle on disk with its SHA-256, size and load state.

        ``loaded`` is true only when the file on disk is the one being served (same SHA-256);
        ``loaded_sha256`` is the digest of the bundle being served under that name and
        version ("" if none), so a file replaced on disk behind the server's back shows up.
        """
        repo = self.repository
        out = pb.ListResponse()
        for name, version in repo.on_disk():
            path = repo.bundle_path(name, version)
            digest = sha256_file(path)
            try:
                served = repo.get(name, version).sha256
            except ServingError:
                served = ""
            out.bundles.add(name=name, version=version, sha256=digest,
                            size=path.stat().st_size, loaded=served == digest,
                            backend=repo.backend, loaded_sha256=served)
        return out

    def Delete(self, request, context):  # noqa: N802
        """Unload and delete a version ("" = all); NOT_FOUND if absent."""
        try:
            return pb.DeleteResponse(versions=self.repository.delete(request.name,
                                                                     request.version))
        except ServingError as err:
            context.abort(err.code, err.message)

    def Load(self, request, context):  # noqa: N802
        """Load a version ("" = all) from disk; NOT_FOUND / INVALID_ARGUMENT."""
        try:
            return pb.LoadResponse(versions=self.repository.load(request.name, request.version))
        except ServingError as err:
            context.abort(err.code, err.message)

    def Unload(self, request, context):  # noqa: N802
        """Unload a version ("" = all); NOT_FOUND if not loaded."""
        try:
            return pb.UnloadResponse(versions=self.repository.unload(request.name,
                                                                     request.version))
        except ServingError as err:
            context.abort(err.code, err.message)


class _Watchdog:
    """Cancels an RPC whose request stream is idle for ``idle_s`` s or runs past ``total_s``.

    ``context.cancel()`` makes the blocked request iterator raise, which frees the handler
    thread (a bare ``next()`` on a gRPC request stream has no timeout of its own).
    """

    def __init__(self, context, idle_s: float, total_s: float) -> None:
        self.context = context
        self.idle_s = idle_s
        self.end = time.monotonic() + total_s
        self.fired = ""
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._arm()

    def _arm(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            wait = min(self.idle_s, max(self.end - time.monotonic(), 0.0))
            self._timer = threading.Timer(wait, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        self.fired = (f"upload sent nothing for {self.idle_s:g} s" if time.monotonic() <
                      self.end else "upload took longer than the server's upload timeout")
        self.context.cancel()

    def wrap(self, chunks):
        """Yield the stream's chunks, re-arming the idle timer after each."""
        for chunk in chunks:
            self._arm()
            yield chunk
        self.stop()  # stream complete: verifying and installing may take longer than idle_s

    def stop(self) -> None:
        """Disarm (the RPC is over)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
