"""Ed25519 signatures over a bundle's canonical manifest (``cryptography``).

Keys are PEM files: PKCS#8 private keys and SubjectPublicKeyInfo public keys (unencrypted).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from stc.errors import BundleError

KeyLike = "Ed25519PrivateKey | Ed25519PublicKey | bytes | str | Path"


def generate_keypair() -> tuple[bytes, bytes]:
    """Return (private_pem, public_pem) of a fresh Ed25519 key pair."""
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, pub


def _pem(key: object, what: str) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, (str, Path)):
        p = Path(key)
        if not p.is_file():
            raise BundleError(f"{what} key file not found: {p}")
        return p.read_bytes()
    raise TypeError(f"{what} key must be an Ed25519 key object, PEM bytes or a path; "
                    f"got {type(key).__name__}")


def load_private_key(key: object) -> Ed25519PrivateKey:
    """Ed25519 private key from an object, PEM bytes or a PEM path. Raises BundleError."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    try:
        k = serialization.load_pem_private_key(_pem(key, "private"), password=None)
    except (ValueError, TypeError) as e:
        raise BundleError(f"private key is not an unencrypted PEM key: {e}") from None
    if not isinstance(k, Ed25519PrivateKey):
        raise BundleError(f"private key must be Ed25519, got {type(k).__name__}")
    return k


def load_public_key(key: object) -> Ed25519PublicKey:
    """Ed25519 public key from an object, PEM bytes or a PEM path. Raises BundleError."""
    if isinstance(key, Ed25519PublicKey):
        return key
    try:
        k = serialization.load_pem_public_key(_pem(key, "public"))
    except (ValueError, TypeError) as e:
        raise BundleError(f"public key is not a PEM public key: {e}") from None
    if not isinstance(k, Ed25519PublicKey):
        raise BundleError(f"public key must be Ed25519, got {type(k).__name__}")
    return k


def sign(manifest_bytes: bytes, private_key: object) -> bytes:
    """64-byte Ed25519 signature of ``manifest_bytes``."""
    return load_private_key(private_key).sign(manifest_bytes)


def verify(manifest_bytes: bytes, signature: bytes, public_key: object) -> None:
    """Raise BundleError unless ``signature`` signs ``manifest_bytes`` under ``public_key``."""
    try:
        load_public_key(public_key).verify(signature, manifest_bytes)
    except InvalidSignature:
        raise BundleError("bundle signature does not verify with the given public key "
                          "(tampered manifest or wrong key)") from None
