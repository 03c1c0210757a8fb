"""The bundle manifest (manifest.json): schema, canonical bytes and strict validation.

Schema (version 1), every key required unless marked optional:
    schema_version: 1                    stc_version: str
    model: {"name": str, "version": str} created: UTC ISO 8601 ("...Z")
    inputs / outputs: [{"name": str, "datatype": OIP name, "shape": [int, -1 = batch]}]
    time_steps: int >= 1                 encoder: "repeat" | "none"
    numerics: "float" | "fixed"          graph: IR dict (stc.ir.Graph.to_dict)
    fixed_graph: IR dict | null          members: {name: {"sha256": hex, "size": int}}
    metadata: object (optional; e.g. the quantisation report)
    selftest: object (optional; reference inputs/outputs, stc.bundle.selftest)

Input contract (optional, stc.runtime.contract): ``graph.metadata.input_contract`` = {input
name: {dtype, shape, range, step, preprocessing, encoding}}, and in a fixed graph also
``fixed_graph.metadata.input_quant`` = {input name: {"scale": s}}; both are validated here.
A bundle without them (written before contracts) loads as before: its inputs are not
checked and its fixed graph takes integer input.
"""

from __future__ import annotations

import json
import re

from stc.errors import BundleError
from stc.ir.shapes import OIP_DATATYPES

SCHEMA_VERSION = 1
MEMBER_RE = re.compile(r"^(weights\.safetensors|loihi/[A-Za-z0-9_][A-Za-z0-9._-]*"
                       r"(/[A-Za-z0-9_][A-Za-z0-9._-]*)*)$")
_ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
REQUIRED = ("schema_version", "stc_version", "model", "created", "inputs", "outputs",
            "time_steps", "encoder", "numerics", "graph", "fixed_graph", "members")


def canonical_bytes(manifest: dict) -> bytes:
    """Canonical JSON bytes: sorted keys, compact separators, UTF-8, no NaN."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode()


def check_member_name(name: object) -> str:
    """Return ``name`` if it is an allowed bundle member name; BundleError otherwise
    (absolute paths, '..', backslashes, unknown top-level members)."""
    if not isinstance(name, str) or not MEMBER_RE.match(name) or ".." in name.split("/"):
        raise BundleError(f"bundle member name {name!r} is not allowed (only "
                          "weights.safetensors and loihi/<relative path> without '..')")
    return name


def _int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _specs(key: str, v: object) -> None:
    if not isinstance(v, list) or not v:
        raise BundleError(f"manifest {key!r} must be a non-empty list of tensor specs")
    for i, s in enumerate(v):
        if not isinstance(s, dict) or set(s) != {"name", "datatype", "shape"}:
            raise BundleError(f"manifest {key}[{i}] must have exactly name, datatype, shape")
        if not isinstance(s["name"], str) or not s["name"]:
            raise BundleError(f"manifest {key}[{i}].name must be a non-empty string")
        if s["datatype"] not in OIP_DATATYPES:
            raise BundleError(f"manifest {key}[{i}].datatype must be an OIP datatype "
                              f"({', '.join(OIP_DATATYPES)}), got {s['datatype']!r}")
        sh = s["shape"]
        if not isinstance(sh, list) or not all(_int(d) and (d > 0 or d == -1) for d in sh):
            raise BundleError(f"manifest {key}[{i}].shape must be ints > 0 or -1")


def _contract_meta(m: dict) -> None:
    """Validate the optional input contract / input quantisation in the graphs' metadata."""
    from stc.runtime.contract import validate_contract

    for key in ("graph", "fixed_graph"):
        g = m[key]
        meta = g.get("metadata") if isinstance(g, dict) else None
        if not isinstance(meta, dict):
            continue
        ic = meta.get("input_contract")
        if ic is not None:
            if not isinstance(ic, dict):
                raise BundleError(f"manifest {key}.metadata.input_contract must be an object")
            for name, c in ic.items():
                try:
                    validate_contract(name, c)
                except ValueError as e:
                    raise BundleError(f"manifest {key}.metadata: {e}") from None
        iq = meta.get("input_quant")
        if iq is not None and (not isinstance(iq, dict) or not all(
                isinstance(v, dict) and set(v) == {"scale"}
                and isinstance(v["scale"], (int, float)) and not isinstance(v["scale"], bool)
                and v["scale"] > 0 for v in iq.values())):
            raise BundleError(f"manifest {key}.metadata.input_quant must be {{input: "
                              "{scale: number > 0}}")


def parse_manifest(data: bytes) -> dict:
    """Parse and validate manifest bytes; returns the dict.

    Raises:
        BundleError: not UTF-8 JSON, not canonical, a missing/extra key, or a wrong type.
    """
    try:
        m = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise BundleError(f"manifest.json is not valid UTF-8 JSON: {e}") from None
    if not isinstance(m, dict):
        raise BundleError("manifest.json must hold a JSON object")
    missing = [k for k in REQUIRED if k not in m]
    if missing:
        raise BundleError(f"manifest.json lacks required keys: {', '.join(missing)}")
    extra = set(m) - set(REQUIRED) - {"metadata", "selftest"}
    if extra:
        raise BundleError(f"manifest.json has unknown keys: {', '.join(sorted(extra))}")
    if m["schema_version"] != SCHEMA_VERSION:
        raise BundleError(f"unsupported bundle schema_version {m['schema_version']!r}; this "
                          f"stc reads version {SCHEMA_VERSION}")
    if not isinstance(m["stc_version"], str):
        raise BundleError("manifest stc_version must be a string")
    mod = m["model"]
    if (not isinstance(mod, dict) or set(mod) != {"name", "version"}
            or not all(isinstance(mod[k], str) and mod[k] for k in mod)):
        raise BundleError("manifest model must be {name: str, version: str}, both non-empty")
    if not isinstance(m["created"], str) or not _ISO_RE.match(m["created"]):
        raise BundleError("manifest created must be a UTC ISO 8601 time ending in 'Z'")
    _specs("inputs", m["inputs"])
    _specs("outputs", m["outputs"])
    if not _int(m["time_steps"]) or not 1 <= m["time_steps"] <= 100_000:
        raise BundleError("manifest time_steps must be an int in 1..100000")
    if m["encoder"] not in ("repeat", "none"):
        raise BundleError("manifest encoder must be 'repeat' or 'none'")
    if m["numerics"] not in ("float", "fixed"):
        raise BundleError("manifest numerics must be 'float' or 'fixed'")
    if not isinstance(m["graph"], dict):
        raise BundleError("manifest graph must be an IR object")
    if m["fixed_graph"] is not None and not isinstance(m["fixed_graph"], dict):
        raise BundleError("manifest fixed_graph must be an IR object or null")
    _contract_meta(m)
    if m["numerics"] == "fixed" and m["fixed_graph"] is None:
        raise BundleError("manifest numerics is 'fixed' but fixed_graph is null")
    mem = m["members"]
    if not isinstance(mem, dict) or "weights.safetensors" not in mem:
        raise BundleError("manifest members must list weights.safetensors")
    for name, info in mem.items():
        check_member_name(name)
        if (not isinstance(info, dict) or set(info) != {"sha256", "size"}
                or not isinstance(info["sha256"], str) or not _HEX_RE.match(info["sha256"])
                or not _int(info["size"]) or info["size"] < 0):
            raise BundleError(f"manifest members[{name!r}] must be "
                              "{sha256: 64 lowercase hex, size: int >= 0}")
    if "metadata" in m and not isinstance(m["metadata"], dict):
        raise BundleError("manifest metadata must be an object")
    if "selftest" in m:  # reference inputs/outputs for a node's self-test (edge activation)
        from .selftest import check_section

        check_section(m["selftest"])
    if canonical_bytes(m) != data:
        raise BundleError("manifest.json is not in canonical form (sorted keys, compact); "
                          "it was edited after writing")
    return m
