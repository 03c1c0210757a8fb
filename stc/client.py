"""A small Python client for ``stc serve`` (OIP v2 + stc bundle repository) over gRPC.

    with Client("localhost:8001") as c:
        out = c.infer("lif", {"x": x})          # {output name: np.ndarray}

Any OIP v2 client works against the server too (e.g. ``tritonclient.grpc``); this helper adds
the stc-only bundle calls (upload, list, load, unload, delete) and health.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import grpc
import numpy as np

from stc.proto import inference_pb2 as pb
from stc.proto import inference_pb2_grpc as pb_grpc
from stc.proto import stc_repository_pb2 as repo_pb
from stc.proto import stc_repository_pb2_grpc as repo_grpc

_DTYPES = {"BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
           "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2",
           "FP32": "<f4", "FP64": "<f8"}
CHUNK_BYTES = 1 << 20


def bundle_chunks(data: bytes, make, **head) -> Iterator:
    """A client stream of ``data``: ``make(**head, data=first piece)``, then ``make(data=...)``
    for every further piece of CHUNK_BYTES (the servers' rule: only the first chunk carries
    the header fields; stc.server.staging)."""
    yield make(**head, data=data[:CHUNK_BYTES])
    for start in range(CHUNK_BYTES, len(data), CHUNK_BYTES):
        yield make(data=data[start:start + CHUNK_BYTES])


def _datatype(arr: np.ndarray) -> str:
    for name, code in _DTYPES.items():
        ref = np.dtype(code)
        if ref.kind == arr.dtype.kind and ref.itemsize == arr.dtype.itemsize:
            return name
    raise TypeError(f"array dtype {arr.dtype} has no Open Inference Protocol datatype")


class Client:
    """Blocking client for one server.

    Args:
        url: ``host:port``.
        token: Bearer token sent as ``authorization`` metadata (servers started with --token).
        root_certificates: PEM bytes or path of the CA to trust; enables TLS.
        timeout: default per-call deadline (s).
        max_message_bytes: gRPC message size limit for both directions.
    """

    def __init__(self, url: str, *, token: str | None = None,
                 root_certificates: bytes | str | Path | None = None,
                 timeout: float | None = 30.0, max_message_bytes: int = 256 << 20) -> None:
        if not isinstance(url, str) or ":" not in url:
            raise ValueError(f"url must be 'host:port', got {url!r}")
        opts = [("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes)]
        if root_certificates is not None:
            pem = root_certificates if isinstance(root_certificates, bytes) \
                else Path(root_certificates).read_bytes()
            self.channel = grpc.secure_channel(url, grpc.ssl_channel_credentials(pem), opts)
        else:
            self.channel = grpc.insecure_channel(url, opts)
        self.timeout = timeout
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.inference = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.repository = repo_grpc.BundleRepositoryStub(self.channel)

    def _kw(self, timeout: float | None) -> dict:
        return {"timeout": self.timeout if timeout is None else timeout,
                "metadata": self.metadata}

    # -- OIP v2 -----------------------------------------------------------------------------
    def live(self, timeout: float | None = None) -> bool:
        """ServerLive."""
        return self.inference.ServerLive(pb.ServerLiveRequest(), **self._kw(timeout)).live

    def ready(self, timeout: float | None = None) -> bool:
        """ServerReady."""
        return self.inference.ServerReady(pb.ServerReadyRequest(), **self._kw(timeout)).ready

    def health(self, service: str = "", timeout: float | None = None) -> str:
        """grpc.health.v1 status name of ``service`` ("" = whole server), e.g. "SERVING"."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        resp = stub.Check(health_pb2.HealthCheckRequest(service=service), **self._kw(timeout))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    def metadata_of(self, model: str, version: str = "", timeout: float | None = None) -> dict:
        """ModelMetadata as a dict: name, versions, platform, inputs/outputs
        (each ``{"name", "datatype", "shape"}``)."""
        r = self.inference.ModelMetadata(pb.ModelMetadataRequest(name=model, version=version),
                                         **self._kw(timeout))

        def tensors(ts):
            return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in ts]

        return {"name": r.name, "versions": list(r.versions), "platform": r.platform,
                "inputs": tensors(r.inputs), "outputs": tensors(r.outputs)}

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], *, version: str = "",
              outputs: Sequence[str] | None = None, request_id: str = "",
              timeout: float | None = None) -> dict[str, np.ndarray]:
        """Run ModelInfer with raw little-endian inputs; returns ``{output name: array}``.

        Args:
            model, version: model to call ("" = latest version).
            inputs: batch-first arrays keyed by input name.
            outputs: names to return (None = all).

        Raises:
            TypeError: an input is not an array with an OIP dtype.
            grpc.RpcError: the server's status (NOT_FOUND, INVALID_ARGUMENT, ...).
        """
        req = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
        for name, value in inputs.items():
            arr = np.asarray(value)
            datatype = _datatype(arr)
            req.inputs.add(name=name, datatype=datatype, shape=list(arr.shape))
            req.raw_input_contents.append(
                np.ascontiguousarray(arr, dtype=np.dtype(_DTYPES[datatype])).tobytes())
        for name in outputs or ():
            req.outputs.add(name=name)
        resp = self.inference.ModelInfer(req, **self._kw(timeout))
        result = {}
        for tensor, raw in zip(resp.outputs, resp.raw_output_contents):
            dtype = np.dtype(_DTYPES[tensor.datatype])
            result[tensor.name] = np.frombuffer(raw, dtype=dtype).reshape(list(tensor.shape))
        return result

    def max_batch_of(self, model: str, version: str = "", timeout: float | None = None) -> int:
        """The server's rows-per-request cap for ``model`` (Triton's ModelConfig
        ``max_batch_size``; 0 = the model takes one request at a time, unsplit)."""
        r = self.inference.ModelConfig(pb.ModelConfigRequest(name=model, version=version),
                                       **self._kw(timeout))
        return int(r.config.max_batch_size)

    def infer_batched(self, model: str, inputs: Mapping[str, np.ndarray], *,
                      version: str = "", outputs: Sequence[str] | None = None,
                      timeout: float | None = None) -> dict[str, np.ndarray]:
        """:meth:`infer` for any number of rows: split along dim 0 into requests of at most
        the server's max batch (:meth:`max_batch_of`), results concatenated in order.

        Raises:
            ValueError: the inputs differ in their number of rows.
            grpc.RpcError: as :meth:`infer`.
        """
        arrays = {k: np.asarray(v) for k, v in inputs.items()}
        rows = {a.shape[0] for a in arrays.values() if a.ndim > 0}
        if len(rows) > 1:
            raise ValueError(f"inputs have different batch sizes {sorted(rows)}; expected one")
        n = rows.pop() if rows else 0
        cap = self.max_batch_of(model, version, timeout)
        if cap <= 0 or n <= cap:
            return self.infer(model, arrays, version=version, outputs=outputs, timeout=timeout)
        parts = [self.infer(model, {k: a[i:i + cap] for k, a in arrays.items()},
                            version=version, outputs=outputs, timeout=timeout)
                 for i in range(0, n, cap)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    # -- stc bundle repository --------------------------------------------------------------
    def upload(self, path: str | Path, name: str, version: str, *, load: bool = True,
               sha256: str | None = None, timeout: float | None = None) -> dict:
        """Stream a bundle file to the server (1 MiB chunks); returns the UploadResponse fields.

        ``sha256`` defaults to the file's digest (override only to test the server's check).
        The server verifies every upload (hashes, format, signature under its public key)
        before storing it, also with ``load=False``.

        Raises:
            grpc.RpcError: INVALID_ARGUMENT (bundle rejected), DATA_LOSS (digest mismatch),
                RESOURCE_EXHAUSTED (too large, or too many uploads at once), UNIMPLEMENTED (a
                ``--read-only`` server).
        """
        data = Path(path).read_bytes()
        digest = sha256 or hashlib.sha256(data).hexdigest()

        r = self.repository.Upload(
            bundle_chunks(data, repo_pb.UploadChunk, name=name, version=version, sha256=digest,
                          total_size=len(data), load=load), **self._kw(timeout))
        return {"name": r.name, "version": r.version, "sha256": r.sha256, "size": r.size,
                "loaded": r.loaded}

    def list_bundles(self, timeout: float | None = None) -> list[dict]:
        """Every bundle in the server's repository: name, version, sha256 (of the file on
        disk), size, loaded (the file on disk is the bundle being served), loaded_sha256 (the
        bundle being served under that name and version, "" if none), backend."""
        r = self.repository.List(repo_pb.ListRequest(), **self._kw(timeout))
        return [{"name": b.name, "version": b.version, "sha256": b.sha256, "size": b.size,
                 "loaded": b.loaded, "loaded_sha256": b.loaded_sha256, "backend": b.backend}
                for b in r.bundles]

    def load(self, name: str, version: str = "", timeout: float | None = None) -> list[str]:
        """Load a bundle already in the repository; returns the versions loaded."""
        return list(self.repository.Load(repo_pb.LoadRequest(name=name, version=version),
                                         **self._kw(timeout)).versions)

    def unload(self, name: str, version: str = "", timeout: float | None = None) -> list[str]:
        """Unload a model version ("" = all); returns the versions unloaded."""
        return list(self.repository.Unload(repo_pb.UnloadRequest(name=name, version=version),
                                           **self._kw(timeout)).versions)

    def delete(self, name: str, version: str = "", timeout: float | None = None) -> list[str]:
        """Unload and delete a bundle version ("" = all); returns the versions deleted."""
        return list(self.repository.Delete(repo_pb.DeleteRequest(name=name, version=version),
                                           **self._kw(timeout)).versions)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
