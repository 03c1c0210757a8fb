"""The ``stc.edge.EdgeAgent`` gRPC servicer (proto/edge.proto) of an EdgeAgent.

Deploy is client-streamed: the first chunk carries the SHA-256 (hex) of the whole bundle and
the deployment options; data is written to the store's staging/ while it is hashed, compared
at the end (DATA_LOSS on mismatch, INVALID_ARGUMENT when the size differs from
``total_size``, RESOURCE_EXHAUSTED past ``max_bundle_bytes``), then handed to
``EdgeAgent.activate``. Errors are gRPC status codes whose message says why and which version
stays active.
"""

from __future__ import annotations

from stc.proto import edge_pb2 as pb
from stc.proto import edge_pb2_grpc as pb_grpc
from stc.server.errors import ServingError
from stc.server.staging import check_announced, receive

import stc

from .probe import Hardware


def hardware_pb(hw: Hardware) -> pb.Hardware:
    """Hardware record -> protobuf."""
    return pb.Hardware(
        hostname=hw.hostname, cpu_cores=hw.cpu.cores, cpu_arch=hw.cpu.arch,
        memory_bytes=hw.cpu.memory_bytes,
        gpus=[pb.Gpu(index=g.index, name=g.name, memory_bytes=g.memory_bytes, driver=g.driver,
                     source=g.source) for g in hw.gpus],
        gpu_detail=hw.gpu_detail,
        lava_sim=pb.Availability(available=hw.lava_sim.available, detail=hw.lava_sim.detail),
        loihi=pb.Availability(available=hw.loihi.available, detail=hw.loihi.detail),
        probed_at=hw.probed_at, injected=hw.injected, devices=hw.devices())


def model_pb(name: str, m: dict) -> pb.ModelState:
    """A store record {active, previous, last_error} -> protobuf ModelState (active view)."""
    rec = m.get("active") or {}
    st = rec.get("selftest") or {}
    prev = m.get("previous") or {}
    return pb.ModelState(
        name=name, version=rec.get("version", ""), sha256=rec.get("sha256", ""),
        backend=rec.get("backend", ""), backend_reason=rec.get("backend_reason", ""),
        numerics=rec.get("numerics", ""),
        selftest=pb.SelfTest(**{k: st[k] for k in ("passed", "cases", "max_abs_error", "exact",
                                                   "atol", "rtol", "latency_ms", "detail")
                                if k in st}),
        previous_version=prev.get("version", ""), activated_at=rec.get("activated_at", ""),
        signed=bool(rec.get("signed", False)), last_error=m.get("last_error", ""))


class EdgeServicer(pb_grpc.EdgeAgentServicer):
    """Probe / Deploy / Rollback / Status of one EdgeAgent.

    Args:
        agent: the EdgeAgent.
        max_bundle_bytes: largest accepted push (bytes).
    """

    def __init__(self, agent, *, max_bundle_bytes: int = 1 << 30) -> None:
        self.agent = agent
        self.max_bundle_bytes = int(max_bundle_bytes)

    def Probe(self, request, context):  # noqa: N802 - gRPC method name
        """The node's hardware (probed again when ``refresh``)."""
        hw = self.agent.refresh_hardware() if request.refresh else self.agent.hardware
        return pb.ProbeResponse(hardware=hardware_pb(hw))

    def _receive(self, chunks):
        first = next(chunks, None)
        want = check_announced(first, self.max_bundle_bytes, "deploy stream")
        staged = self.agent.store.new_staging_path()
        receive(first, chunks, staged, want=want, max_bytes=self.max_bundle_bytes,
                first_only=("sha256", "device", "numerics"), what="deploy",
                mismatch="nothing changed")
        return staged, first

    def Deploy(self, request_iterator, context):  # noqa: N802
        """Client-streamed push + verified activation (module docstring)."""
        try:
            staged, first = self._receive(iter(request_iterator))
            name, _, changed, msg = self.agent.activate(
                staged, device=first.device or None, allow_downgrade=first.allow_downgrade,
                numerics=first.numerics or None)
        except ServingError as err:
            context.abort(err.code, err.message)
        return pb.DeployResponse(model=model_pb(name, self.agent.store.model(name)),
                                 changed=changed, message=msg)

    def Rollback(self, request, context):  # noqa: N802
        """Previous version active again (self-tested first)."""
        try:
            _, changed, msg = self.agent.rollback(request.name)
        except ServingError as err:
            context.abort(err.code, err.message)
        return pb.DeployResponse(model=model_pb(request.name,
                                                self.agent.store.model(request.name)),
                                 changed=changed, message=msg)

    def Status(self, request, context):  # noqa: N802
        """Hardware and every model's record."""
        store = self.agent.store
        return pb.StatusResponse(hardware=hardware_pb(self.agent.hardware),
                                 models=[model_pb(n, store.model(n)) for n in store.names()],
                                 stc_version=stc.__version__)
