"""Fleet roll-outs over edge agents: a nodes file, canary-first parallel deployment with a
failure limit, status and rollback (used by ``stc fleet``).

Nodes file (TOML)::

    [nodes.edge1]
    address = "10.0.0.5:8001"     # host:port of `stc edge agent` (required)
    token = "..."                 # Bearer token, or token_env = "ENV_VAR" holding it
    tls_ca = "ca.pem"             # CA certificate (PEM): connect with TLS
    canary = true                 # deploy here first (else the first --canary nodes are)
    device = "gpu"                # deployment device for this node (default: the node picks)

Roll-out (``deploy``): canary nodes first (in parallel), then the others in waves of
``parallel`` nodes; after the canaries and after each wave the roll-out stops once more than
``max_failures`` nodes failed, and the remaining nodes are left untouched ("skipped"). A node
that fails keeps its previous version active (the agent's activation guarantees it).
"""

from __future__ import annotations

import math
import os
import re
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from .client import EdgeClient

_ADDR_RE = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_NODE_KEYS = {"address", "token", "token_env", "tls_ca", "canary", "device"}


@dataclass
class Node:
    """One node of the nodes file."""

    name: str
    address: str
    token: str | None = None
    tls_ca: str | None = None
    canary: bool = False
    device: str = ""


@dataclass
class NodeResult:
    """Outcome on one node (a row of the ``stc fleet`` table; ``to_dict`` for ``--json``)."""

    node: str
    address: str
    ok: bool
    status: str
    phase: str = ""
    hardware: str = ""
    devices: list[str] = field(default_factory=list)
    model: str = ""
    version: str = ""
    previous: str = ""
    backend: str = ""
    backend_reason: str = ""
    selftest: str = ""
    latency_ms: float = math.nan
    seconds: float = 0.0
    message: str = ""

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN latency -> None)."""
        d = dict(self.__dict__)
        if isinstance(d["latency_ms"], float) and math.isnan(d["latency_ms"]):
            d["latency_ms"] = None
        return d


def load_nodes(path: str | Path) -> list[Node]:
    """Parse and check a nodes file (module docstring).

    Raises:
        FileNotFoundError: no such file. ValueError: TOML syntax errors, no nodes, unknown
            keys, a missing or malformed address, duplicate addresses, a token_env that is not
            set, a tls_ca that is not a file (the message names the node and the key).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"nodes file not found: {p}")
    try:
        doc = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p}: not valid TOML: {e}") from None
    if set(doc) - {"nodes"}:
        raise ValueError(f"{p}: unknown top-level keys {sorted(set(doc) - {'nodes'})}; "
                         "expected only [nodes.<name>] tables")
    raw = doc.get("nodes")
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{p}: no nodes; expected [nodes.<name>] tables with an address")
    nodes, seen = [], {}
    for name, t in raw.items():
        where = f"{p}: node {name!r}"
        if not isinstance(t, dict):
            raise ValueError(f"{where} must be a table")
        extra = set(t) - _NODE_KEYS
        if extra:
            raise ValueError(f"{where}: unknown keys {sorted(extra)}; allowed: "
                             f"{sorted(_NODE_KEYS)}")
        addr = t.get("address")
        if not isinstance(addr, str) or not _ADDR_RE.match(addr):
            raise ValueError(f"{where}: address must be 'host:port', got {addr!r}")
        if addr in seen:
            raise ValueError(f"{where}: address {addr} is also node {seen[addr]!r}")
        seen[addr] = name
        token = t.get("token")
        if "token_env" in t:
            token = os.environ.get(str(t["token_env"]))
            if not token:
                raise ValueError(f"{where}: token_env {t['token_env']!r} is not set")
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError(f"{where}: token must be a non-empty string")
        ca = t.get("tls_ca")
        if ca is not None:
            ca_path = (p.parent / str(ca)) if not Path(str(ca)).is_absolute() else Path(ca)
            if not ca_path.is_file():
                raise ValueError(f"{where}: tls_ca {ca} is not a file")
            ca = str(ca_path)
        canary = t.get("canary", False)
        if not isinstance(canary, bool):
            raise ValueError(f"{where}: canary must be true or false")
        device = t.get("device", "")
        if device not in ("", "cpu", "gpu", "cuda", "lava-sim", "loihi"):
            raise ValueError(f"{where}: device must be cpu, gpu, lava-sim or loihi; got "
                             f"{device!r}")
        nodes.append(Node(name, addr, token, ca, canary, device))
    return nodes


def select(nodes: list[Node], names: list[str] | None) -> list[Node]:
    """The nodes named (all when ``names`` is empty). Raises ValueError for an unknown name."""
    if not names:
        return nodes
    known = {n.name: n for n in nodes}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown node(s) {unknown}; the nodes file has {sorted(known)}")
    return [known[n] for n in names]


def _client(node: Node, timeout: float) -> EdgeClient:
    return EdgeClient(node.address, token=node.token, root_certificates=node.tls_ca,
                      timeout=timeout)


def _rpc_error(node: Node, e: grpc.RpcError) -> str:
    code = e.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"unreachable ({node.address}): {e.details()}"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return "wrong or missing token (UNAUTHENTICATED)"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer within the deadline ({node.address})"
    return f"{code.name}: {e.details()}"


def _fill(r: NodeResult, model_state, hardware=None) -> None:
    st = model_state.selftest
    r.model, r.version = model_state.name, model_state.version
    r.previous, r.backend = model_state.previous_version, model_state.backend
    r.backend_reason = model_state.backend_reason
    if st.cases or st.detail:
        r.selftest = ("pass" if st.passed else "FAIL") + (
            " (bit-exact)" if st.exact else f" (tol {st.atol:g})")
        r.latency_ms = st.latency_ms / max(1, st.cases)
    if hardware is not None:
        gpus = ", ".join(g.name for g in hardware.gpus) or "no gpu"
        r.hardware = (f"{hardware.cpu_cores}x {hardware.cpu_arch}, {gpus}, "
                      f"{'loihi' if hardware.loihi.available else 'no loihi'}"
                      f"{', lava-sim' if hardware.lava_sim.available else ''}")
        r.devices = list(hardware.devices)


def _bundle_name(data: bytes) -> str:
    """The model name in a bundle's manifest ("" if unreadable; the node verifies it)."""
    import io
    import json
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return str(json.loads(z.read("manifest.json"))["model"]["name"])
    except Exception:  # noqa: BLE001 - the node reports the real error
        return ""


def _deploy_one(node: Node, data: bytes, device: str, allow_downgrade: bool,
                timeout: float, phase: str) -> NodeResult:
    t0 = time.perf_counter()
    r = NodeResult(node.name, node.address, False, "failed", phase)
    try:
        with _client(node, timeout) as c:
            hw = c.probe()
            resp = c.deploy(data, device=node.device or device,
                            allow_downgrade=allow_downgrade)
            r.ok, r.status, r.message = True, "activated" if resp.changed else "unchanged", \
                resp.message
            _fill(r, resp.model, hw)
    except grpc.RpcError as e:
        r.message = _rpc_error(node, e)
        try:  # what stays active there
            with _client(node, min(timeout, 5.0)) as c:
                s = c.status()
            models = [m for m in s.models if m.name == _bundle_name(data)]
            if models:
                _fill(r, models[0], s.hardware)
            else:
                _fill_hw(r, s.hardware)
        except grpc.RpcError:
            pass
    r.seconds = time.perf_counter() - t0
    return r


def deploy(bundle: str | Path, nodes: list[Node], *, canary: int = 1, max_failures: int = 0,
           parallel: int = 8, device: str = "", allow_downgrade: bool = False,
           timeout: float = 120.0) -> list[NodeResult]:
    """Roll ``bundle`` out (module docstring); returns one result per node, in file order.

    Args:
        canary: how many nodes go first when none is marked ``canary`` (0: no canary phase).
        max_failures: failures tolerated before the roll-out stops.
        parallel: nodes deployed at once after the canaries.
        device: deployment device for nodes that do not name one.

    Raises:
        FileNotFoundError: no bundle. ValueError: bad counts.
    """
    if canary < 0 or max_failures < 0 or parallel < 1:
        raise ValueError(f"need canary >= 0, max_failures >= 0, parallel >= 1; got {canary}, "
                         f"{max_failures}, {parallel}")
    data = Path(bundle).read_bytes()
    marked = [n for n in nodes if n.canary]
    first = marked if marked else nodes[:canary]
    waves = [first] if first else []
    rest = [n for n in nodes if n not in first]
    waves += [rest[i:i + parallel] for i in range(0, len(rest), parallel)]
    results: dict[str, NodeResult] = {}
    failures = 0
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(nodes)) or 1)) as pool:
        for i, wave in enumerate(waves):
            if failures > max_failures:
                for n in wave:
                    results[n.name] = NodeResult(
                        n.name, n.address, False, "skipped", "",
                        message=f"roll-out stopped: {failures} failure(s) > --max-failures "
                                f"{max_failures}")
                continue
            phase = "canary" if (i == 0 and first) else f"wave {i + (0 if first else 1)}"
            for r in pool.map(lambda n, ph=phase: _deploy_one(n, data, device,
                                                              allow_downgrade, timeout, ph),
                              wave):
                results[r.node] = r
                failures += 0 if r.ok else 1
    return [results[n.name] for n in nodes]


def status(nodes: list[Node], *, timeout: float = 10.0) -> list[NodeResult]:
    """One result per (node, model) from each node's Status (one row for a node without
    models or unreachable)."""
    def one(node: Node) -> list[NodeResult]:
        try:
            with _client(node, timeout) as c:
                s = c.status()
        except grpc.RpcError as e:
            return [NodeResult(node.name, node.address, False, "error",
                               message=_rpc_error(node, e))]
        rows = []
        for m in s.models or [None]:
            r = NodeResult(node.name, node.address, True, "no models" if m is None else
                           ("serving" if m.version else "none active"))
            if m is not None:
                _fill(r, m, s.hardware)
                r.message = m.last_error
            else:
                _fill_hw(r, s.hardware)
            rows.append(r)
        return rows

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(nodes)))) as pool:
        return [r for rows in pool.map(one, nodes) for r in rows]


def _fill_hw(r: NodeResult, hardware) -> None:
    gpus = ", ".join(g.name for g in hardware.gpus) or "no gpu"
    r.hardware = f"{hardware.cpu_cores}x {hardware.cpu_arch}, {gpus}"
    r.devices = list(hardware.devices)


def rollback(model: str, nodes: list[Node], *, timeout: float = 60.0) -> list[NodeResult]:
    """Roll ``model`` back to its previous version on every node (in parallel)."""
    def one(node: Node) -> NodeResult:
        t0 = time.perf_counter()
        r = NodeResult(node.name, node.address, False, "failed")
        try:
            with _client(node, timeout) as c:
                resp = c.rollback(model)
                hw = c.probe()
            r.ok, r.status, r.message = True, "rolled back", resp.message
            _fill(r, resp.model, hw)
        except grpc.RpcError as e:
            r.message = _rpc_error(node, e)
        r.seconds = time.perf_counter() - t0
        return r

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(nodes)))) as pool:
        return list(pool.map(one, nodes))
