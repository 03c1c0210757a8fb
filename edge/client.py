"""A blocking client for one edge agent's ``stc.edge.EdgeAgent`` service (proto/edge.proto).

    with EdgeClient("127.0.0.1:8001", token=...) as c:
        c.deploy("model.stcb")          # -> pb.DeployResponse (raises grpc.RpcError on refusal)
        c.status(); c.rollback("lif"); c.probe(refresh=True)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
from stc.proto import edge_pb2 as pb
from stc.proto import edge_pb2_grpc as pb_grpc

from stc.client import bundle_chunks


class EdgeClient:
    """Client for one agent.

    Args:
        url: ``host:port``.
        token: Bearer token (agents started with --token).
        root_certificates: PEM bytes or path of the CA to trust; enables TLS.
        timeout: per-call deadline (s); a deployment includes the node's self-test.

    Raises:
        ValueError: url not ``host:port``.
    """

    def __init__(self, url: str, *, token: str | None = None,
                 root_certificates: bytes | str | Path | None = None,
                 timeout: float = 60.0) -> None:
        if not isinstance(url, str) or ":" not in url:
            raise ValueError(f"url must be 'host:port', got {url!r}")
        opts = [("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20)]
        if root_certificates is not None:
            pem = root_certificates if isinstance(root_certificates, bytes) \
                else Path(root_certificates).read_bytes()
            self.channel = grpc.secure_channel(url, grpc.ssl_channel_credentials(pem), opts)
        else:
            self.channel = grpc.insecure_channel(url, opts)
        self.stub = pb_grpc.EdgeAgentStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout

    def _kw(self, timeout: float | None) -> dict:
        return {"metadata": self.metadata, "timeout": timeout or self.timeout}

    def probe(self, refresh: bool = False, timeout: float | None = None) -> pb.Hardware:
        """The node's hardware record."""
        return self.stub.Probe(pb.ProbeRequest(refresh=refresh), **self._kw(timeout)).hardware

    def status(self, timeout: float | None = None) -> pb.StatusResponse:
        """Hardware and every model's record."""
        return self.stub.Status(pb.StatusRequest(), **self._kw(timeout))

    def deploy(self, bundle: str | Path | bytes, *, device: str = "", allow_downgrade: bool = False,
               numerics: str = "", timeout: float | None = None) -> pb.DeployResponse:
        """Push a bundle (path or bytes) and activate it; raises grpc.RpcError when refused."""
        data = bundle if isinstance(bundle, bytes) else Path(bundle).read_bytes()
        sha = hashlib.sha256(data).hexdigest()

        return self.stub.Deploy(
            bundle_chunks(data, pb.DeployChunk, sha256=sha, total_size=len(data), device=device,
                          allow_downgrade=allow_downgrade, numerics=numerics),
            **self._kw(timeout))

    def rollback(self, name: str, timeout: float | None = None) -> pb.DeployResponse:
        """Make the previous version of ``name`` active again."""
        return self.stub.Rollback(pb.RollbackRequest(name=name), **self._kw(timeout))

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> EdgeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
