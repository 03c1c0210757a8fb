"""``stc keygen --out DIR``: write an Ed25519 key pair for signing bundles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .bundle import cli_errors


def keygen(
    out: Annotated[Path, typer.Option(
        help="folder for stc_signing.pem / stc_signing.pub.pem (created if missing)")] = Path("."),
    force: Annotated[bool, typer.Option(help="overwrite existing key files")] = False,
) -> None:
    """Create an Ed25519 private key (mode 0600) and its public key, both PEM."""
    with cli_errors(check_code=2):
        from stc.bundle import generate_keypair

        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        priv_p, pub_p = out / "stc_signing.pem", out / "stc_signing.pub.pem"
        if not force and (priv_p.exists() or pub_p.exists()):
            raise ValueError(f"{priv_p} or {pub_p} exists; pass --force to overwrite")
        priv, pub = generate_keypair()
        fd = os.open(priv_p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(priv)
        pub_p.write_bytes(pub)
        typer.echo(f"wrote {priv_p} (keep private) and {pub_p}")
