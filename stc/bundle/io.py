"""Writing and reading ``.stcb`` bundles: one uncompressed zip with fixed members.

Members, in this order: ``manifest.json`` (canonical JSON, stc.bundle.manifest),
``weights.safetensors`` (every tensor of the float graph and, prefixed ``fixed/``, of the
fixed graph), optional ``loihi/...`` members (``extra_members``), and ``manifest.sig``
(64-byte Ed25519 signature of manifest.json) when signed. Nothing is pickled and no code is
carried: the runtime rebuilds the network from the graph JSON and the tensors.

Writes are atomic (temp file in the target folder + fsync + os.replace). Reads check size
limits, member names, compression, the manifest schema, every member's SHA-256 and size, and
the signature before any tensor is parsed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import os
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import stc
from stc.errors import BundleError
from stc.ir import Graph, GraphError

from . import signing
from .manifest import canonical_bytes, check_member_name, parse_manifest

MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
SIGNATURE = "manifest.sig"
FIXED_PREFIX = "fixed/"
MAX_BUNDLE_BYTES = 4 << 30
MAX_MANIFEST_BYTES = 16 << 20
MAX_MEMBERS = 1024


@dataclass
class Bundle:
    """A loaded, verified bundle.

    Attributes:
        manifest: the parsed manifest dict. graph: the float IR graph (tensors attached).
        fixed_graph: the quantised graph or None. extra_members: loihi/... name -> bytes.
        signed: a signature is present. verified: it was checked against a public key.
    """

    manifest: dict
    graph: Graph
    fixed_graph: Graph | None = None
    extra_members: dict[str, bytes] = field(default_factory=dict)
    signed: bool = False
    verified: bool = False

    @property
    def name(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def version(self) -> str:
        return self.manifest["model"]["version"]


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _specs(graph: Graph, nodes, time_steps: int) -> list[dict]:
    temporal = graph.temporal()
    out = []
    for n in nodes:
        lead = [-1, -1] if n.OP == "Input" and n.temporal else [-1]
        if n.OP == "Output" and temporal[n.name]:
            lead = [-1, time_steps if graph.metadata.get("encoder") == "repeat" else -1]
        dtype = getattr(n, "datatype", "FP32")
        out.append({"name": n.name, "datatype": dtype, "shape": lead + list(n.shape)})
    return out


def build_manifest(graph: Graph, *, name: str, version: str = "1",
                   fixed_graph: Graph | None = None, numerics: str | None = None,
                   metadata: dict | None = None) -> dict:
    """Manifest dict for ``graph`` without the ``members`` entry (filled in by write)."""
    repeats = [n for n in graph.nodes if n.OP == "Repeat"]
    T = repeats[0].time_steps if repeats else int(graph.metadata.get("time_steps", 1))
    graph.metadata["encoder"] = "repeat" if repeats else "none"
    return {
        "schema_version": 1,
        "stc_version": stc.__version__,
        "model": {"name": name, "version": version},
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "inputs": _specs(graph, graph.inputs(), T),
        "outputs": _specs(graph, graph.outputs(), T),
        "time_steps": T,
        "encoder": "repeat" if repeats else "none",
        "numerics": numerics or "float",
        "graph": graph.to_dict(),
        "fixed_graph": None if fixed_graph is None else _prefixed(fixed_graph).to_dict(),
        "metadata": dict(metadata or {}),
    }


def _prefixed(g: Graph) -> Graph:
    h = Graph.from_dict(g.to_dict())
    for n in h.nodes:
        n.params = {k: FIXED_PREFIX + v for k, v in n.params.items()}
    return h


def write_bundle(path: str | Path, graph: Graph, *, name: str, version: str = "1",
                 fixed_graph: Graph | None = None, numerics: str | None = None,
                 extra_members: dict[str, bytes] | None = None, private_key: object = None,
                 metadata: dict | None = None, selftest: dict | None = None) -> Path:
    """Write a ``.stcb`` bundle atomically and return its path.

    Args:
        path: target file; an existing file is replaced only once the new one is complete.
        graph: the float IR graph (verified here).
        name, version: model name and version (non-empty strings).
        fixed_graph: optional quantised graph (stc.passes.quantize) for fixed numerics and
            the Lava backends.
        numerics: the default mode of ``load_bundle`` ("float" unless given).
        extra_members: more members, names ``loihi/<relative path>`` -> bytes.
        private_key: Ed25519 private key (object, PEM bytes or path) to sign the manifest.
        metadata: JSON-serialisable extras stored in the manifest (e.g. a quantisation report).
        selftest: optional ``selftest`` manifest section (stc.bundle.selftest.make_section).

    Raises:
        BundleError: bad member names, a graph that fails verification, bad key.
        TypeError / ValueError: bad arguments.
    """
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        raise ValueError("name and version must be non-empty strings")
    if not isinstance(graph, Graph) or not (fixed_graph is None
                                            or isinstance(fixed_graph, Graph)):
        raise TypeError("graph and fixed_graph must be stc.ir.Graph objects")
    try:
        graph = graph.copy().verify()  # the caller's graph is left as it was
        if fixed_graph is not None:
            fixed_graph.verify()
    except GraphError as e:
        raise BundleError(f"graph does not verify: {e}") from None
    extras = dict(extra_members or {})
    for k, v in extras.items():
        check_member_name(k)
        if k == WEIGHTS:
            raise BundleError(f"extra_members may not replace {WEIGHTS}")
        if not isinstance(v, (bytes, bytearray)):
            raise TypeError(f"extra_members[{k!r}] must be bytes, got {type(v).__name__}")
    tensors = {k: t.detach().cpu().contiguous().clone() for k, t in graph.tensors.items()
               if any(k in n.params.values() for n in graph.nodes)}
    if fixed_graph is not None:
        used = {k for n in fixed_graph.nodes for k in n.params.values()}
        tensors.update({FIXED_PREFIX + k: fixed_graph.tensors[k].detach().cpu().contiguous()
                        .clone() for k in used})
    weights = st_save(tensors, metadata={"format": "stc"})
    manifest = build_manifest(graph, name=name, version=version, fixed_graph=fixed_graph,
                              numerics=numerics, metadata=metadata)
    if selftest is not None:
        manifest["selftest"] = selftest
    members = {WEIGHTS: weights, **{k: bytes(v) for k, v in sorted(extras.items())}}
    manifest["members"] = {k: {"sha256": _sha(v), "size": len(v)} for k, v in members.items()}
    mbytes = canonical_bytes(manifest)
    parse_manifest(mbytes)  # never write what we would refuse to read
    sig = signing.sign(mbytes, private_key) if private_key is not None else None
    return _atomic_zip(Path(path), [(MANIFEST, mbytes), *members.items()]
                       + ([(SIGNATURE, sig)] if sig else []))


def _atomic_zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BundleError(f"output folder does not exist: {folder}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
                for name, data in members:
                    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_STORED
                    z.writestr(info, data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a server running as another user reads it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass
    return path


_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # zip local file header (APPNOTE 4.3.7)


def _check_layout(blob: bytes, infos: list[zipfile.ZipInfo], where: str) -> None:
    """Reject zips whose members claim more bytes than the file holds or overlap.

    An overlapping-member zip (the "better zip bomb", Fifield 2019) points many central
    directory entries into one shared run of bytes, so a small file expands to far more
    member bytes than it contains. Each member's span runs from its local header to the end
    of its stored data; spans must be disjoint and lie inside the file.

    Raises:
        BundleError: total member bytes beyond the file size, a bad local header, a member
            past the end of the file, or two members that overlap.
    """
    total = sum(i.compress_size for i in infos)
    if total > len(blob):
        raise BundleError(f"{where}: members claim {total} bytes in a {len(blob)}-byte file "
                          "(overlapping members, a zip bomb)")
    spans = []
    for info in infos:
        start = info.header_offset
        if start < 0 or start + _LOCAL_HEADER.size > len(blob):
            raise BundleError(f"{where}: member {info.filename!r} starts outside the file")
        head = _LOCAL_HEADER.unpack_from(blob, start)
        if head[0] != b"PK\x03\x04":
            raise BundleError(f"{where}: member {info.filename!r} has no local header")
        end = start + _LOCAL_HEADER.size + head[9] + head[10] + info.compress_size
        if end > len(blob):
            raise BundleError(f"{where}: member {info.filename!r} runs past the end of the file")
        spans.append((start, end, info.filename))
    spans.sort()
    for (_, end, name), (start, _, other) in zip(spans, spans[1:]):
        if start < end:
            raise BundleError(f"{where}: members {name!r} and {other!r} overlap (overlapping "
                              "members, a zip bomb)")


def read_bundle(source: str | Path | bytes, *, public_key: object = None,
                max_bytes: int = MAX_BUNDLE_BYTES) -> Bundle:
    """Open and fully verify a bundle; nothing is executed.

    Order: size limit -> zip structure (names, no duplicates, stored only, member sizes,
    member bytes within the file size, no overlapping members) ->
    manifest schema -> signature (required when ``public_key`` is given) -> SHA-256 and size of
    every member -> safetensors parse (no pickle) -> graph verification.

    Args:
        source: a path or the bundle's bytes.
        public_key: Ed25519 public key (object, PEM bytes or path); when given, an unsigned or
            wrongly signed bundle is rejected.
        max_bytes: largest accepted bundle size in bytes.

    Raises:
        BundleError: with a message saying which check failed. FileNotFoundError: no file.
    """
    if isinstance(source, (bytes, bytearray)):
        blob = bytes(source)
        where = "bundle"
    else:
        p = Path(source)
        if not p.is_file():
            raise FileNotFoundError(f"bundle not found: {p}")
        size = p.stat().st_size
        if size > max_bytes:
            raise BundleError(f"{p}: bundle is {size} bytes, over the limit of {max_bytes}")
        blob = p.read_bytes()
        where = str(p)
    if len(blob) > max_bytes:
        raise BundleError(f"{where}: bundle is {len(blob)} bytes, over the limit of {max_bytes}")
    try:
        z = zipfile.ZipFile(io.BytesIO(blob))
        infos = z.infolist()
    except Exception as e:  # zipfile raises many kinds on corrupt headers
        raise BundleError(f"{where}: not a bundle (bad or truncated zip: {e})") from None
    if len(infos) > MAX_MEMBERS:
        raise BundleError(f"{where}: {len(infos)} members, over the limit of {MAX_MEMBERS}")
    seen: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.filename not in (MANIFEST, SIGNATURE):
            check_member_name(info.filename)
        if info.filename in seen:
            raise BundleError(f"{where}: duplicate member {info.filename!r}")
        if info.compress_type != zipfile.ZIP_STORED:
            raise BundleError(f"{where}: member {info.filename!r} is compressed; bundles "
                              "store members uncompressed")
        if info.file_size > max_bytes:
            raise BundleError(f"{where}: member {info.filename!r} is over the size limit")
        seen[info.filename] = info
    _check_layout(blob, infos, where)
    if MANIFEST not in seen:
        raise BundleError(f"{where}: no {MANIFEST} member")
    if seen[MANIFEST].file_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{where}: {MANIFEST} is over {MAX_MANIFEST_BYTES} bytes")

    def read(name: str) -> bytes:
        try:
            return z.read(name)
        except Exception as e:  # BadZipFile, CRC errors, "version not supported", encryption
            raise BundleError(f"{where}: member {name!r} cannot be read (truncated or "
                              f"corrupt: {e})") from None

    mbytes = read(MANIFEST)
    manifest = parse_manifest(mbytes)
    signed = SIGNATURE in seen
    verified = False
    if public_key is not None:
        if not signed:
            raise BundleError(f"{where}: bundle is unsigned but a public key was given "
                              "(a signature is required)")
        signing.verify(mbytes, read(SIGNATURE), public_key)
        verified = True
    listed = manifest["members"]
    actual = set(seen) - {MANIFEST, SIGNATURE}
    if actual != set(listed):
        diff = sorted(actual ^ set(listed))
        raise BundleError(f"{where}: members differ from the manifest's list: {diff}")
    data: dict[str, bytes] = {}
    for name, info in listed.items():
        if seen[name].file_size != info["size"]:
            raise BundleError(f"{where}: member {name!r} has size {seen[name].file_size}, "
                              f"manifest says {info['size']}")
        b = read(name)
        if _sha(b) != info["sha256"]:
            raise BundleError(f"{where}: SHA-256 of member {name!r} does not match the "
                              "manifest (tampered or corrupt)")
        data[name] = b
    try:
        tensors = st_load(data[WEIGHTS])
    except Exception as e:  # safetensors raises its own error types
        raise BundleError(f"{where}: {WEIGHTS} does not parse: {e}") from None
    try:
        graph = Graph.from_dict(manifest["graph"], tensors).verify()
        fixed = None
        if manifest["fixed_graph"] is not None:
            fixed = Graph.from_dict(manifest["fixed_graph"], tensors).verify()
    except GraphError as e:
        raise BundleError(f"{where}: graph in manifest is invalid: {e}") from None
    extras = {k: v for k, v in data.items() if k != WEIGHTS}
    return Bundle(manifest=manifest, graph=graph, fixed_graph=fixed, extra_members=extras,
                  signed=signed, verified=verified)


def tensor_dtype_summary(tensors: dict[str, torch.Tensor]) -> dict[str, int]:
    """Count of tensors per dtype name (for ``stc inspect``)."""
    out: dict[str, int] = {}
    for t in tensors.values():
        k = str(t.dtype).replace("torch.", "")
        out[k] = out.get(k, 0) + 1
    return out
