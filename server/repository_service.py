"""stc bundle repository servicer (``stc.repository.BundleRepository``, stc_repository.proto).

Upload is client-streamed: the first chunk names the model, version and SHA-256 (hex) of the
whole bundle; data is written to a staging file next to the target, hashed while streaming and
compared at the end (DATA_LOSS on mismatch, INVALID_ARGUMENT when the size differs from
``total_size``, RESOURCE_EXHAUSTED past ``max_bundle_bytes``). The staged bundle is then
installed with ``ModelRepository.install`` (hot replace; a bundle that fails to load is
rejected and the previous version keeps serving).
"""

from __future__ import annotations

import hashlib
import re

import grpc
from stc.proto import stc_repository_pb2 as pb
from stc.proto import stc_repository_pb2_grpc as pb_grpc
from stc.server.errors import ServingError, exhausted, invalid
from stc.server.repository import ModelRepository, check_name, sha256_file

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class RepositoryServicer(pb_grpc.BundleRepositoryServicer):
    """Upload / List / Delete / Load / Unload over ``repository``.

    Args:
        repository: the ModelRepository to change.
        max_bundle_bytes: largest accepted upload (bytes).
    """

    def __init__(self, repository: ModelRepository, *, max_bundle_bytes: int = 1 << 30) -> None:
        self.repository = repository
        self.max_bundle_bytes = int(max_bundle_bytes)

    def _upload(self, chunks) -> pb.UploadResponse:
        first = next(chunks, None)
        if first is None:
            raise invalid("empty upload: the first chunk must carry name, version and sha256")
        name = check_name("model name", first.name)
        version = check_name("version", first.version)
        want = first.sha256.lower()
        if not _HEX64.match(want):
            raise invalid("sha256 must be 64 hex digits (SHA-256 of the whole bundle)")
        if first.total_size > self.max_bundle_bytes:
            raise exhausted(f"bundle of {first.total_size} bytes exceeds the limit of "
                            f"{self.max_bundle_bytes} bytes")
        staged = self.repository.staging_path(name, version)
        digest = hashlib.sha256()
        size = 0
        try:
            with open(staged, "wb") as f:
                chunk = first
                while chunk is not None:
                    if chunk is not first and (chunk.name or chunk.version or chunk.sha256):
                        raise invalid("only the first upload chunk may set name/version/sha256")
                    size += len(chunk.data)
                    if size > self.max_bundle_bytes:
                        raise exhausted(f"bundle exceeds the limit of {self.max_bundle_bytes} "
                                        "bytes")
                    digest.update(chunk.data)
                    f.write(chunk.data)
                    chunk = next(chunks, None)
            if first.total_size and size != first.total_size:
                raise invalid(f"received {size} bytes, first chunk announced {first.total_size}")
            got = digest.hexdigest()
            if got != want:
                raise ServingError(grpc.StatusCode.DATA_LOSS,
                                   f"bundle {name}/{version} SHA-256 mismatch: received {got}, "
                                   f"expected {want}; upload rejected, previous version keeps "
                                   "serving")
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        loaded = self.repository.install(name, version, staged, load=first.load)
        return pb.UploadResponse(name=name, version=version, sha256=got, size=size,
                                 loaded=loaded)

    def Upload(self, request_iterator, context):  # noqa: N802 - gRPC method name
        """Client-streamed bundle upload (see the module docstring)."""
        try:
            return self._upload(iter(request_iterator))
        except ServingError as err:
            context.abort(err.code, err.message)

    def List(self, request, context):  # noqa: N802
        """Every bundle on disk with its SHA-256, size and load state."""
        repo = self.repository
        out = pb.ListResponse()
        for name, version in repo.on_disk():
            path = repo.bundle_path(name, version)
            loaded = version in repo.versions(name)
            out.bundles.add(name=name, version=version, sha256=sha256_file(path),
                            size=path.stat().st_size, loaded=loaded, backend=repo.backend)
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
