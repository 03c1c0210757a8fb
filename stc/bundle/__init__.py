"""stc.bundle: the ``.stcb`` bundle format (manifest.json + weights.safetensors + loihi/...,
SHA-256 of every member, optional Ed25519 signature). See stc.bundle.io."""

from .io import Bundle, read_bundle, write_bundle
from .manifest import SCHEMA_VERSION, canonical_bytes, parse_manifest
from .signing import generate_keypair

__all__ = ["SCHEMA_VERSION", "Bundle", "canonical_bytes", "generate_keypair", "parse_manifest",
           "read_bundle", "write_bundle"]
